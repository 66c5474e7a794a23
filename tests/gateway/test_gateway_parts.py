"""The gateway's pure parts, without network or clock: policies, candidate tiers, ejection, locality,
the registry's merging of route tables, and settings."""

from __future__ import annotations

import asyncio
import random

import pytest
from pydantic import ValidationError

from polycloud.catalog import load_catalog
from polycloud.errors import UserError
from polycloud.gateway import (
    ClusterRoute,
    GatewaySettings,
    ReplicaRoute,
    RouteTable,
    ServiceRoutes,
    ejection_policies,
    routing_policies,
)
from polycloud.gateway.background import HealthChecker
from polycloud.gateway.ejection import make_ejection_policy
from polycloud.gateway.forwarding import Failure, Forwarder, Reply
from polycloud.gateway.locality import Locator
from polycloud.gateway.policies import make_routing_policy
from polycloud.gateway.running import split_addr
from polycloud.gateway.selecting import AFFINITY_SLACK, NoRoute, Selector, affine
from polycloud.gateway.upstreams import ServicePool, Upstream, UpstreamRegistry

SETTINGS = GatewaySettings()
CATALOG = load_catalog()


def upstream(
    cluster: str = "a",
    role: str = "active",
    *,
    outstanding: int = 0,
    ewma: float | None = None,
    site: ClusterRoute | None = None,
    n: int = 0,
) -> Upstream:
    route = ReplicaRoute(f"{cluster}-{role}-{n}", cluster, role, f"http://127.0.0.1:{9000 + n}", "ready")
    u = Upstream("m", route, site, 0.0)
    u.outstanding = outstanding
    u.ewma_ms = ewma
    return u


def selector(policy: str = "least-outstanding", **overrides: object) -> Selector:
    settings = GatewaySettings(routing_policy=policy, **overrides)
    return Selector(settings, make_routing_policy(settings, Locator(CATALOG), random.Random(1)))


def pool(*upstreams: Upstream) -> ServicePool:
    return ServicePool("m", "active-passive", list(upstreams))


def test_policies_are_registered_by_name() -> None:
    assert routing_policies() == ["latency", "least-outstanding", "locality", "p2c"]
    assert ejection_policies() == ["consecutive-failures", "never"]
    with pytest.raises(UserError, match="unknown routing policy 'nope'; known: latency"):
        make_routing_policy(GatewaySettings(routing_policy="nope"), Locator(None))
    with pytest.raises(UserError, match="unknown ejection policy"):
        make_ejection_policy(GatewaySettings(ejection_policy="nope"))


def test_least_outstanding_then_latency() -> None:
    policy = make_routing_policy(GatewaySettings(routing_policy="least-outstanding"), Locator(None))
    busy, idle_slow, idle_fast = upstream(outstanding=3, n=1), upstream(ewma=9, n=2), upstream(ewma=2, n=3)
    assert policy.choose([busy, idle_slow, idle_fast], None) is idle_fast


def test_power_of_two_never_picks_the_busier_of_two() -> None:
    policy = make_routing_policy(GatewaySettings(routing_policy="p2c"), Locator(None), random.Random(3))
    light, heavy = upstream(outstanding=1, n=1), upstream(outstanding=5, n=2)
    assert {policy.choose([light, heavy], None) for _ in range(50)} == {light}


def test_latency_weighs_ewma_by_load() -> None:
    policy = make_routing_policy(GatewaySettings(routing_policy="latency"), Locator(None))
    fast_busy, slow_idle = upstream(ewma=2, outstanding=9, n=1), upstream(ewma=10, n=2)
    assert policy.choose([fast_busy, slow_idle], None) is slow_idle  # 2 × 10 > 10 × 1


def test_locality_ranks_clusters_by_client_rtt_plus_latency() -> None:
    locator = Locator(CATALOG)
    policy = make_routing_policy(GatewaySettings(), locator, random.Random(5))
    frankfurt = ClusterRoute("fra", "aws", "eu-central-1", 50.11, 8.68)
    virginia = ClusterRoute("iad", "aws", "us-east-1", 38.99, -77.45)
    eu, us = upstream("fra", site=frankfurt, n=1), upstream("iad", site=virginia, n=2)
    paris = locator.point("aws/eu-west-3")
    ohio = locator.point("aws/us-east-2")

    assert policy.choose([eu, us], paris) is eu
    assert policy.choose([eu, us], ohio) is us
    eu.ewma_ms = 500.0  # a brown-out in Frankfurt outweighs the ocean
    assert policy.choose([eu, us], paris) is us


def test_locator_uses_measured_then_modelled_rtt() -> None:
    locator = Locator(CATALOG)
    onprem = ClusterRoute("dc", "onprem", "basement", 52.52, 13.40)
    unknown = ClusterRoute("x")
    home = locator.point("aws/us-east-1")
    assert home is not None
    measured = CATALOG.measured_rtt_ms(("aws", "us-east-1"), ("aws", "eu-west-1"))
    assert measured is not None
    assert locator.rtt_ms(home, ClusterRoute("ie", "aws", "eu-west-1", 53.3, -6.3)) == measured
    assert 100 < locator.rtt_ms(home, onprem) < 200  # 5 + ~6,700 km / 60
    assert locator.rtt_ms(home, unknown) == 0.0
    assert locator.rtt_ms(None, onprem) == 0.0
    assert locator.point("aws/nowhere") is None
    assert locator.point("garbage") is None
    assert Locator(None).point("aws/us-east-1") is None


def test_standby_only_when_no_active_is_usable() -> None:
    active, standby = upstream("p"), upstream("s", "standby", n=1)
    select = selector()
    assert select.select(pool(active, standby), None, 0.0, []) is active
    active.healthy = False
    assert select.select(pool(active, standby), None, 0.0, []) is standby
    active.healthy = True
    active.ejected_until = 10.0
    assert select.select(pool(active, standby), None, 5.0, []) is standby
    assert select.select(pool(active, standby), None, 10.0, []) is active


def test_a_retry_prefers_another_cluster_even_a_standby_one() -> None:
    a0, a1, standby = upstream("p", n=0), upstream("p", n=1), upstream("s", "standby", n=2)
    select = selector()
    assert select.select(pool(a0, a1, standby), None, 0.0, [a0]) is standby
    assert select.select(pool(a0, a1), None, 0.0, [a0]) is a1
    other = upstream("q", n=3)
    assert select.select(pool(a0, a1, other, standby), None, 0.0, [a0]) is other


def test_burst_joins_past_the_threshold() -> None:
    active, burst = upstream("p", outstanding=1), upstream("b", "burst", n=1)
    select = selector(burst_threshold=2)
    assert select.select(pool(active, burst), None, 0.0, []) is active
    active.outstanding = 2
    assert select.select(pool(active, burst), None, 0.0, []) is burst


def test_saturation_unavailability_and_panic() -> None:
    select = selector(max_in_flight_per_replica=2)
    full = upstream("p", outstanding=2)
    assert select.select(pool(full), None, 0.0, []) == NoRoute(
        429, "every replica of service 'm' is saturated (2 in flight)"
    )
    starting = Upstream("m", ReplicaRoute("x", "p", "active", "http://h:1", "starting"), None, 0.0)
    sick = upstream("q", n=1)
    sick.healthy = False
    refused = select.select(pool(starting, sick), None, 0.0, [])
    assert isinstance(refused, NoRoute)
    assert refused.status == 503
    assert "1 failing health checks, 1 starting" in refused.reason
    ejected = upstream("r", n=2)
    ejected.ejected_until = 99.0
    assert select.select(pool(ejected), None, 0.0, []) is ejected  # panic routing beats refusing all
    empty = select.select(pool(), None, 0.0, [])
    assert isinstance(empty, NoRoute)
    assert "no replica with an endpoint" in empty.reason


def test_consecutive_failures_eject_with_doubling_backoff() -> None:
    policy = make_ejection_policy(GatewaySettings(eject_after_failures=2, eject_base_s=1, eject_max_s=4))
    u = upstream()
    assert policy.failed(u, 0.0) is False
    policy.succeeded(u, 0.5)
    assert policy.failed(u, 1.0) is False
    assert policy.failed(u, 1.1) is True
    assert u.ejected_until == pytest.approx(2.1)
    assert not u.usable(2.0)
    assert u.usable(2.1)
    policy.failed(u, 3.0)
    assert policy.failed(u, 3.0) is True
    assert u.ejected_until == pytest.approx(5.0)  # 2 s the second time
    for now in (6.0, 11.0):
        policy.failed(u, now)
        policy.failed(u, now)
    assert u.ejected_until == pytest.approx(15.0)  # capped at 4 s
    policy.succeeded(u, 100.0)  # a long quiet spell forgets the back-off
    policy.failed(u, 100.0)
    policy.failed(u, 100.0)
    assert u.ejected_until == pytest.approx(101.0)


def test_never_ejects() -> None:
    policy = make_ejection_policy(GatewaySettings(ejection_policy="never", eject_after_failures=1))
    u = upstream()
    assert not any(policy.failed(u, float(t)) for t in range(10))
    assert u.usable(10.0)


def test_registry_keeps_measurements_of_replicas_that_stay() -> None:
    registry = UpstreamRegistry(Locator(CATALOG), None)
    first = ReplicaRoute("r1", "a", "active", "http://127.0.0.1:1", "ready")
    second = ReplicaRoute("r2", "a", "active", "http://127.0.0.1:2", "ready")
    no_endpoint = ReplicaRoute("r3", "a", "active", None, "starting")
    assert not registry.loaded
    assert registry.apply(RouteTable.of([ServiceRoutes("m", "single", (first, no_endpoint))]))
    kept = registry.pool("m")
    assert kept is not None and len(kept.upstreams) == 1
    kept.upstreams[0].ewma_ms = 7.0
    assert not registry.apply(RouteTable.of([ServiceRoutes("m", "single", (first, no_endpoint))]))

    promoted = ReplicaRoute("r1", "a", "standby", "http://127.0.0.1:1", "ready")
    registry.apply(RouteTable.of([ServiceRoutes("m", "single", (promoted, second))]))
    now = registry.pool("m")
    assert now is not None
    assert [u.id for u in now.upstreams] == ["r1", "r2"]
    assert now.upstreams[0].ewma_ms == 7.0 and now.standby == [now.upstreams[0]]
    assert registry.version == 2
    assert registry.pool("other") is None


def test_registry_ignores_endpoints_it_cannot_route_to() -> None:
    registry = UpstreamRegistry(Locator(None), None)
    endpoints = ["localhost:5000", "ftp://h:1", "http://h:1/sub", "http://h:99999", "http://127.0.0.1:5000/"]
    routes = tuple(ReplicaRoute(f"r{i}", "a", "active", e, "ready") for i, e in enumerate(endpoints))
    registry.apply(RouteTable.of([ServiceRoutes("m", "single", routes)]))
    found = registry.pool("m")
    assert found is not None
    assert [(u.id, u.endpoint) for u in found.upstreams] == [("r4", "http://127.0.0.1:5000")]


def test_addresses_parse() -> None:
    assert split_addr("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert split_addr("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", ":80", "h:99999", "h:x"):
        with pytest.raises(UserError, match="HOST:PORT"):
            split_addr(bad)


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="provider/region"):
        GatewaySettings(region="us-east-1")
    with pytest.raises(ValidationError):
        GatewaySettings(max_attempts=0)
    with pytest.raises(ValidationError):
        GatewaySettings(unknown_knob=1)  # type: ignore[call-arg]
    assert GatewaySettings(region="aws/us-east-1").refresh_interval_s <= 0.5


class ScriptedForwarder(Forwarder):
    """Answers health checks from a script instead of the network."""

    def __init__(self, outcomes: list[Reply | Failure]) -> None:
        super().__init__(GatewaySettings())
        self.outcomes = outcomes

    async def probe(self, upstream: Upstream, path: str, timeout_s: float) -> Reply | Failure:
        return self.outcomes.pop(0)


def test_health_checks_mark_and_measure_afresh_after_recovery() -> None:
    u = upstream()
    registry = UpstreamRegistry(Locator(None), None)
    script: list[Reply | Failure] = [
        Reply(200, [], b"", 4.0),
        Failure("connect", "refused"),
        Reply(200, [], b"", 900.0),  # waited out a restart
        Reply(200, [], b"", 2.0),
    ]
    checker = HealthChecker(registry, ScriptedForwarder(script), GatewaySettings(ewma_alpha=0.5))

    assert asyncio.run(checker.check(u)) and u.ewma_ms == 4.0
    u.consecutive_failures = 2
    assert not asyncio.run(checker.check(u)) and not u.usable(0.0)
    assert asyncio.run(checker.check(u)) and u.usable(0.0)
    assert u.ewma_ms is None and u.consecutive_failures == 0
    asyncio.run(checker.check(u))
    assert u.ewma_ms == 2.0


def test_prefix_affinity_keeps_a_prefix_on_one_replica_of_the_chosen_cluster() -> None:
    """Rendezvous hashing within the cluster the policy picked: the same prefix meets the same replica
    whatever the order of candidates, prefixes spread over replicas, and load bounds the preference."""
    local = [upstream("a", n=i) for i in range(4)]
    far = upstream("b", n=9)
    picks = {affine([*local, far], local[0], b"system: you are a helpful assistant").id for _ in range(5)}
    assert len(picks) == 1 and picks.pop().startswith("a-")
    assert affine([far, *reversed(local)], local[3], b"system: you are a helpful assistant").id in {
        u.id for u in local
    }
    spread = {affine(local, local[0], f"prefix {i}".encode()).id for i in range(40)}
    assert len(spread) == 4
    preferred = affine(local, local[0], b"p")
    preferred.outstanding = AFFINITY_SLACK + 1
    assert affine(local, local[0], b"p") is local[0]  # too busy: the policy's choice wins
    assert affine([far], far, b"p") is far
