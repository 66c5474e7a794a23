"""OFREP at a real gateway (uvicorn in a thread, real HTTP): evaluation, bulk with ETag and 304, the
configuration, OFREP's error shapes, inference keys, the context the gateway adds, and flags that keep
answering while the route source fails."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support import wait_until

from polycloud.errors import TransientError
from polycloud.exchange import KeyGrant
from polycloud.gateway import (
    ClusterRoute,
    GatewaySettings,
    RouteTable,
    ServiceRoutes,
    StaticRouteSource,
    create_app,
)
from polycloud.gateway.flagboard import FlagBoard
from polycloud.gateway.keys import hash_key
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.ofrep import OfrepFront
from polycloud.gateway.routes import FlagRoute
from polycloud.gateway.running import SERVER_OPTIONS

from .support import FAST, Gateway, ServerThread

KEY = "pk_flags-key"
ECHO = {  # answers the variant named after the context value the rule reads
    "state": "ENABLED",
    "variants": {"eu": "eu", "us": "us", "ranking": "ranking", "other": "other", "k7": "k7"},
    "defaultVariant": "other",
}


def echo(var: str, cases: dict[Any, str]) -> dict[str, Any]:
    rule: list[Any] = []
    for value, variant in cases.items():
        rule += [{"==": [{"var": var}, value]}, variant]
    return {**ECHO, "targeting": {"if": [*rule, "other"]}}


FLAGS = [
    FlagRoute("region", echo("region", {"aws/eu-west-1": "eu", "us": "us"})),
    FlagRoute("cluster", echo("cluster", {"dublin": "eu"})),
    FlagRoute("project", echo("project", {"ranking": "ranking"})),
    FlagRoute("key", echo("inferenceKey", {7: "k7"})),
    FlagRoute("dark", {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}),
]


def routes(flags: list[FlagRoute] = FLAGS) -> RouteTable:
    services = [ServiceRoutes("ranker", project="ranking")]
    clusters = [ClusterRoute("dublin", "aws", "eu-west-1"), ClusterRoute("virginia", "aws", "us-east-1")]
    return RouteTable.of(services, clusters, flags)


class Keys:
    """A key source with one key (id 7) of service `ranker`, or none."""

    def __init__(self, keyed: bool) -> None:
        grant = KeyGrant(7, "ranker", hash_key(KEY), rps=1.0, burst=1, monthly_quota=None, used=0, month="")
        self.keys = [grant] if keyed else []

    def snapshot(self) -> Sequence[KeyGrant]:
        return self.keys

    def flush(self, month: str, counts: dict[int, int], tokens: dict[int, int]) -> None:
        pass


class Failing(StaticRouteSource):
    """A route source that can be made to fail like an unreachable store."""

    def __init__(self, table: RouteTable) -> None:
        super().__init__(table)
        self.down = threading.Event()

    def snapshot(self) -> RouteTable:
        if self.down.is_set():
            raise TransientError("the store is unreachable")
        return super().snapshot()


def serve(source: StaticRouteSource, keyed: bool = False) -> Gateway:
    settings = GatewaySettings(**FAST, region="aws/eu-west-1")
    app = create_app(source, settings, rng=random.Random(7), keys=Keys(keyed))
    return Gateway(app, ServerThread(app, lifespan="on", **SERVER_OPTIONS).start(), source)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = serve(Failing(routes()))
    yield gw
    gw.server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def evaluate(http: httpx.Client, gw: Gateway, key: str, context: Any = None, **kw: Any) -> httpx.Response:
    body = {} if context is None else {"context": context}
    return http.post(f"{gw.url}/ofrep/v1/evaluate/flags/{key}", json=body, **kw)


def test_the_gateway_adds_where_it_is_and_the_caller_may_say_otherwise(
    gateway: Gateway, http: httpx.Client
) -> None:
    assert evaluate(http, gateway, "region", {"targetingKey": "u"}).json()["variant"] == "eu"
    assert evaluate(http, gateway, "cluster", {}).json()["variant"] == "eu"
    assert evaluate(http, gateway, "region", {"region": "us"}).json()["variant"] == "us"
    header = {"x-polycloud-client-region": "us"}
    assert evaluate(http, gateway, "region", {}, headers=header).json()["variant"] == "us"
    answer = evaluate(http, gateway, "dark", {"targetingKey": "u"})
    assert answer.status_code == 200
    assert answer.json() == {"key": "dark", "reason": "STATIC", "variant": "off", "value": False}


def test_errors_have_ofrep_s_shapes(gateway: Gateway, http: httpx.Client) -> None:
    missing = evaluate(http, gateway, "nope", {})
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    for context in ("x", [1], 3):
        bad = evaluate(http, gateway, "dark", context)
        assert bad.status_code == 400, context
        assert bad.json()["key"] == "dark" and bad.json()["errorCode"] == "INVALID_CONTEXT"
    number = evaluate(http, gateway, "dark", {"targetingKey": 5})
    assert number.status_code == 400 and "targetingKey must be a string" in number.json()["errorDetails"]
    garbled = http.post(f"{gateway.url}/ofrep/v1/evaluate/flags/dark", content=b"{")
    assert garbled.status_code == 400 and garbled.json()["errorCode"] == "PARSE_ERROR"
    bulk = http.post(f"{gateway.url}/ofrep/v1/evaluate/flags", json={"context": "x"})
    assert bulk.status_code == 400 and bulk.json().keys() == {"errorCode", "errorDetails"}
    wrong = http.get(f"{gateway.url}/ofrep/v1/evaluate/flags/dark")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert http.get(f"{gateway.url}/ofrep/v1/nothing").status_code == 404
    huge = http.post(f"{gateway.url}/ofrep/v1/evaluate/flags/dark", content=b" " * (2**20 + 1))
    assert huge.status_code == 413


def test_bulk_answers_every_flag_with_an_etag_and_304_while_nothing_changed(
    gateway: Gateway, http: httpx.Client
) -> None:
    url = f"{gateway.url}/ofrep/v1/evaluate/flags"
    first = http.post(url, json={"context": {"targetingKey": "u"}})
    assert first.status_code == 200
    assert [f["key"] for f in first.json()["flags"]] == ["cluster", "dark", "key", "project", "region"]
    etag = first.headers["etag"]
    same = http.post(url, json={"context": {"targetingKey": "u"}}, headers={"if-none-match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    other = http.post(url, json={"context": {"region": "us"}}, headers={"if-none-match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    source = gateway.source
    assert isinstance(source, StaticRouteSource)
    dark_on = FlagRoute("dark", {**FLAGS[-1].definition, "defaultVariant": "on"})
    source.set(routes([*FLAGS[:-1], dark_on]))

    def fresh() -> httpx.Response | None:
        again = http.post(url, json={"context": {"targetingKey": "u"}}, headers={"if-none-match": etag})
        return again if again.status_code == 200 else None

    changed = wait_until(fresh, what="the changed flag to show")
    assert {"key": "dark", "reason": "STATIC", "variant": "on", "value": True} in changed.json()["flags"]


def test_the_configuration_has_an_etag_too(gateway: Gateway, http: httpx.Client) -> None:
    url = f"{gateway.url}/ofrep/v1/configuration"
    config = http.get(url)
    assert config.status_code == 200
    polling = config.json()["capabilities"]["cacheInvalidation"]["polling"]
    assert polling == {"enabled": True, "minPollingIntervalMs": 50}
    assert http.get(url, headers={"if-none-match": f"W/{config.headers['etag']}"}).status_code == 304


def test_flags_keep_answering_while_the_source_fails(gateway: Gateway, http: httpx.Client) -> None:
    source = gateway.source
    assert isinstance(source, Failing)
    source.down.set()
    version = gateway.app.registry.version
    wait_until(lambda: gateway.app.refresher._last_error is not None, what="a failed refresh")
    assert evaluate(http, gateway, "dark", {}).json()["value"] is False
    assert gateway.app.registry.version == version


def test_with_keys_in_the_fleet_ofrep_needs_one_and_knows_its_project() -> None:
    gw = serve(StaticRouteSource(routes()), keyed=True)
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            refused = evaluate(http, gw, "dark", {})
            assert refused.status_code == 401 and "needs an inference key" in refused.json()["errorDetails"]
            wrong = evaluate(http, gw, "dark", {}, headers={"x-api-key": "pk_wrong"})
            assert wrong.status_code == 401
            bearer = {"authorization": f"Bearer {KEY}"}
            spoofed = {"project": "other", "inferenceKey": 1}  # the key's facts win over the caller's
            assert evaluate(http, gw, "project", spoofed, headers=bearer).json()["variant"] == "ranking"
            assert evaluate(http, gw, "key", spoofed, headers={"x-api-key": KEY}).json()["variant"] == "k7"
            assert http.get(f"{gw.url}/ofrep/v1/configuration", headers=bearer).status_code == 200
            metrics = http.get(f"{gw.url}/metrics").text
            counted = '_flag_evaluations_total{flag="project",reason="TARGETING_MATCH",variant="ranking"}'
            assert counted in metrics
    finally:
        gw.server.stop()


FRONT = OfrepFront(FlagBoard(GatewayMetrics()), GatewaySettings(**FAST, region="aws/eu-west-1"))
FRONT.board.apply(routes().flags)
BODIES = st.one_of(
    st.binary(max_size=64),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
        max_leaves=10,
    ).map(lambda value: json.dumps({"context": value}).encode()),
)


async def call(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await FRONT.handle(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["POST", "GET", "PUT"]),
    st.sampled_from(
        ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/", "/ofrep/v1/configuration"]
    ).flatmap(lambda p: st.sampled_from([p, p + "dark", p + "région/%00", p + "project"])),
    BODIES,
)
def test_any_request_gets_an_ofrep_answer_below_500(method: str, path: str, body: bytes) -> None:
    status, answer = asyncio.run(call(method, path, body))
    assert status < 500, (status, answer)
    if answer:
        document = json.loads(answer)
        assert isinstance(document, dict) and ("errorDetails" in document or status == 200)
