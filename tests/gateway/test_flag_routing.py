"""Routing by feature flag at a real gateway: a Service's requests go to the service its flag's variant
names, a split by targeting key keeps each key on one side, and flipping the flag moves the traffic
within a route refresh."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import httpx
from tests.support import wait_until

from polycloud.gateway import RouteTable, ServiceRoutes, StaticRouteSource
from polycloud.gateway.flagrouting import rewritten
from polycloud.gateway.routes import FlagRoute, FlagSplit

from .support import INFER_BODY, MakeGateway, MakeStub, replica

SPLIT = {"fractional": [["next", 50], ["stay", 50]]}


def canary(default: str, targeting: dict[str, Any] | None = None) -> FlagRoute:
    spec = {"state": "ENABLED", "variants": {"next": True, "stay": False}, "defaultVariant": default}
    return FlagRoute("canary", {**spec, "targeting": targeting} if targeting else spec)


def table(front: Any, other: Any, flag: FlagRoute) -> RouteTable:
    split = FlagSplit("canary", (("next", "ranker-v2"),))
    services = [
        ServiceRoutes("ranker", "single", (replica(front.server, "c1"),), routing=split),
        ServiceRoutes("ranker-v2", "single", (replica(other.server, "c1"),)),
    ]
    return RouteTable.of(services, [], [flag])


def served_by(client: httpx.Client, url: str, key: str | None = None) -> str:
    headers = {} if key is None else {"x-polycloud-targeting-key": key}
    answer = client.post(f"{url}/v2/models/ranker/infer", json=INFER_BODY, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_name"])


def test_the_flag_moves_traffic_within_a_refresh(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    front, other = make_stub("c1", "ranker"), make_stub("c1", "ranker-v2")
    source = StaticRouteSource(table(front, other, canary("stay")))
    gateway = make_gateway(source)
    assert {served_by(client, gateway.url) for _ in range(5)} == {"ranker"}
    source.set(table(front, other, canary("next")))
    wait_until(lambda: served_by(client, gateway.url) == "ranker-v2", what="the flip to move traffic")
    assert {served_by(client, gateway.url) for _ in range(5)} == {"ranker-v2"}
    assert other.replica.hits >= 6
    metrics = client.get(f"{gateway.url}/metrics").text
    assert 'polycloud_gateway_flag_evaluations_total{flag="canary",reason="STATIC",variant="next"}' in metrics


def test_a_split_by_targeting_key_is_binomial_and_sticky(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    front, other = make_stub("c1", "ranker"), make_stub("c1", "ranker-v2")
    gateway = make_gateway(StaticRouteSource(table(front, other, canary("stay", SPLIT))))
    n = 400
    sides = [served_by(client, gateway.url, f"user-{i}") for i in range(n)]
    moved = Counter(sides)["ranker-v2"]
    assert abs(moved - n / 2) <= 3 * math.sqrt(n / 4), moved
    assert [served_by(client, gateway.url, f"user-{i}") for i in range(20)] == sides[:20]
    assert served_by(client, gateway.url) == "ranker"  # no targeting key: the split's default variant


def test_a_disabled_or_missing_flag_leaves_requests_with_the_service_called(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    front, other = make_stub("c1", "ranker"), make_stub("c1", "ranker-v2")
    flag = canary("next")
    disabled = FlagRoute("canary", {**flag.definition, "state": "DISABLED"})
    source = StaticRouteSource(table(front, other, disabled))
    gateway = make_gateway(source)
    assert served_by(client, gateway.url) == "ranker"
    source.set(RouteTable.of(list(table(front, other, flag).services.values()), [], []))
    wait_until(lambda: gateway.app.ofrep.board.keys() == [], what="the flag to be gone")
    assert served_by(client, gateway.url) == "ranker"


def test_paths_are_rewritten_only_when_they_name_the_service() -> None:
    assert rewritten(b"/v2/models/a/infer", "a", "b") == b"/v2/models/b/infer"
    assert rewritten(b"/v2/models/a", "a", "b") == b"/v2/models/b"
    assert rewritten(b"/v2/models/ab/infer", "a", "b") is None
    assert rewritten(b"/v2/models/%61/infer", "a", "b") is None
