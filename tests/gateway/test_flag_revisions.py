"""Routing by a flag to revisions of the same service, at a real gateway: a variant naming a revision
sends its requests to that revision's replicas, the service's own traffic stays off them, a revision
with no ready replica falls back to the current one, and flipping the flag moves traffic in a refresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from tests.support import wait_until

from polycloud.gateway import RouteTable, ServiceRoutes, StaticRouteSource
from polycloud.gateway.routes import FlagRoute, FlagSplit, ReplicaRoute
from polycloud.gateway.snapshot import SavingRouteSource, saved_routes
from polycloud.gateway.sourcing import _held, _routing

from .support import INFER_BODY, MakeGateway, MakeStub, Stub

OLD, NEW = 1, 2


def version(default: str, state: str = "ENABLED", targeting: dict[str, Any] | None = None) -> FlagRoute:
    spec = {"state": state, "variants": {"old": "old", "new": "new"}, "defaultVariant": default}
    return FlagRoute("version", {**spec, "targeting": targeting} if targeting else spec)


def route(stub: Stub, revision: int, state: str = "ready") -> ReplicaRoute:
    return ReplicaRoute(f"r{revision}-{stub.server.port}", "c1", "active", stub.url, state, revision)


def table(
    old: Stub,
    new: Stub,
    flag: FlagRoute,
    variants: tuple[tuple[str, str | int], ...],
    states: tuple[str, str] = ("ready", "ready"),
) -> RouteTable:
    """Service `ranker` at revision 2, with a replica of r1 held for the flag; `states`: of r1's, r2's."""
    replicas = (route(old, OLD, states[0]), route(new, NEW, states[1]))
    service = ServiceRoutes("ranker", "single", replicas, routing=FlagSplit("version", variants), held=(OLD,))
    return RouteTable.of([service], [], [flag])


def served_by(client: httpx.Client, url: str, key: str | None = None) -> str:
    headers = {} if key is None else {"x-polycloud-targeting-key": key}
    answer = client.post(f"{url}/v2/models/ranker/infer", json=INFER_BODY, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["cluster"])


def stubs(make_stub: MakeStub) -> tuple[Stub, Stub]:
    """Replicas of r1 and r2 of `ranker`; each names its revision as its "cluster" in its answers."""
    return make_stub("r1", "ranker"), make_stub("r2", "ranker")


BOTH: tuple[tuple[str, str | int], ...] = (("old", OLD), ("new", NEW))


def test_the_variant_s_revision_serves_and_a_flip_moves_traffic(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    old, new = stubs(make_stub)
    source = StaticRouteSource(table(old, new, version("old"), BOTH))
    gateway = make_gateway(source)
    assert {served_by(client, gateway.url) for _ in range(6)} == {"r1"}
    source.set(table(old, new, version("new"), BOTH))
    wait_until(lambda: served_by(client, gateway.url) == "r2", what="the flip to move traffic")
    assert {served_by(client, gateway.url) for _ in range(6)} == {"r2"}
    metrics = client.get(f"{gateway.url}/metrics").text
    assert 'polycloud_gateway_flag_evaluations_total{flag="version",reason="STATIC",variant="old"}' in metrics
    assert 'polycloud_gateway_flag_evaluations_total{flag="version",reason="STATIC",variant="new"}' in metrics


def test_a_split_by_targeting_key_keeps_each_key_on_its_revision(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    old, new = stubs(make_stub)
    beta = {"if": [{"starts_with": [{"var": "targetingKey"}, "beta-"]}, "old", "new"]}
    gateway = make_gateway(StaticRouteSource(table(old, new, version("new", targeting=beta), BOTH)))
    assert [served_by(client, gateway.url, k) for k in ("beta-1", "user-1", "beta-2", "user-2")] == [
        "r1",
        "r2",
        "r1",
        "r2",
    ]


def test_the_service_s_own_traffic_stays_off_a_held_revision(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    old, new = stubs(make_stub)
    only_old: tuple[tuple[str, str | int], ...] = (("old", OLD),)
    source = StaticRouteSource(table(old, new, version("new"), only_old))  # "new": not listed
    gateway = make_gateway(source)
    assert {served_by(client, gateway.url) for _ in range(10)} == {"r2"}
    source.set(table(old, new, version("new", "DISABLED"), only_old))
    wait_until(lambda: gateway.app.ofrep.board.keys() == ["version"], what="the flag")
    assert {served_by(client, gateway.url) for _ in range(10)} == {"r2"}
    assert old.replica.hits == 0


def test_a_flag_never_fails_a_request_when_its_revision_cannot_serve(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    old, new = stubs(make_stub)
    source = StaticRouteSource(table(old, new, version("old"), BOTH, ("starting", "ready")))
    gateway = make_gateway(source)
    assert {served_by(client, gateway.url) for _ in range(4)} == {"r2"}  # r1 not ready: the current
    source.set(table(old, new, version("new"), BOTH, ("ready", "starting")))
    wait_until(lambda: served_by(client, gateway.url) == "r1", what="the held revision to stand in")


def test_the_store_s_routing_keeps_revisions_as_numbers_and_holds_the_older_ones(tmp_path: Path) -> None:
    spec = {"spec": {"routing": {"flag": "version", "variants": {"old": 1, "new": 3, "other": "beta"}}}}
    split = _routing(spec)
    assert split == FlagSplit("version", (("old", 1), ("new", 3), ("other", "beta")))
    assert _held(split, 3, None) == (1,)
    assert _held(split, 3, 1) == ()  # r1 is a canary's baseline: it serves the service's own traffic
    assert _held(None, 3, None) == ()
    saved = saved_routes(tmp_path)
    routes = RouteTable.of([ServiceRoutes("ranker", routing=split, held=(1,))], [], [version("new")])
    SavingRouteSource(StaticRouteSource(routes), saved).snapshot()
    loaded = saved_routes(tmp_path).load()
    assert loaded is not None and loaded[0].table() == routes  # numbers survive the copy on disk
