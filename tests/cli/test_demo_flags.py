"""The demo's feature-flag step against a real gateway (its HTTP server on a thread) serving the example
flag `new-ranker`: the EU rule answers `on`, and the 30/70 split over the demo's users is within 3σ."""

from __future__ import annotations

import math
import random

import httpx
import yaml
from tests.gateway.support import FAST, ServerThread

from polycloud.cli import demo_flags
from polycloud.gateway import GatewaySettings, RouteTable, StaticRouteSource, create_app
from polycloud.gateway.routes import FlagRoute
from polycloud.gateway.running import SERVER_OPTIONS


def example_flags() -> list[FlagRoute]:
    documents = yaml.safe_load_all((demo_flags.EXAMPLES / "flags.yaml").read_text())
    return [FlagRoute(d["metadata"]["name"], d["spec"]) for d in documents]


def test_the_demo_asks_the_gateway_for_the_example_flag() -> None:
    source = StaticRouteSource(RouteTable.of([], [], example_flags()))
    app = create_app(source, GatewaySettings(**FAST, region="aws/us-east-1"), rng=random.Random(7))
    server = ServerThread(app, lifespan="on", **SERVER_OPTIONS).start()
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            eu = demo_flags.evaluate(http, server.url, {"targetingKey": "user-1", "region": "eu"})
            assert (eu["status"], eu["value"], eu["variant"]) == (200, True, "on")
            split = demo_flags.flags_through_gateway(http, server.url)
    finally:
        server.stop()
    assert sum(split.values()) == demo_flags.USERS and set(split) == {"on", "off"}
    three_sigma = 3 * math.sqrt(demo_flags.USERS * 0.3 * 0.7)
    assert abs(split["on"] - 0.3 * demo_flags.USERS) <= three_sigma
