"""Routing through real HTTP: locality, measured latency, in-flight load, and the patterns' roles
(standby only while the actives are down, burst only past the load threshold)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from polycloud.gateway import ClusterRoute, StaticRouteSource

from .support import INFER_BODY, Gateway, MakeGateway, MakeStub, Stub, replica, table, wait_until

USE1 = ClusterRoute("use1", "aws", "us-east-1", 38.99, -77.45)
SYD = ClusterRoute("syd", "aws", "ap-southeast-2", -33.87, 151.21)


def infer(client: httpx.Client, gateway: Gateway, **headers: str) -> httpx.Response:
    return client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY, headers=headers)


def clusters_of(answers: list[httpx.Response]) -> Counter[str]:
    assert all(a.status_code == 200 for a in answers), [a.status_code for a in answers]
    return Counter(a.headers["x-polycloud-cluster"] for a in answers)


def test_locality_prefers_the_clients_nearest_cluster(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    use1, syd = make_stub("use1"), make_stub("syd")
    routes = table([replica(use1.server, "use1"), replica(syd.server, "syd")], clusters=[USE1, SYD])
    gateway = make_gateway(StaticRouteSource(routes), region="aws/us-east-1")

    from_home = [infer(client, gateway) for _ in range(10)]
    from_sydney = [
        infer(client, gateway, **{"x-polycloud-client-region": "aws/ap-southeast-2"}) for _ in range(10)
    ]
    from_virginia = [
        infer(client, gateway, **{"x-polycloud-client-region": "gcp/us-east4"}) for _ in range(10)
    ]

    assert clusters_of(from_home) == {"use1": 10}
    assert clusters_of(from_sydney) == {"syd": 10}
    assert clusters_of(from_virginia) == {"use1": 10}


def test_unknown_client_region_falls_back_to_measured_latency(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    fast, slow = make_stub("fast"), make_stub("slow")
    slow.replica.delay_s = 0.3
    gateway = make_gateway(
        StaticRouteSource(table([replica(fast.server, "fast"), replica(slow.server, "slow")]))
    )
    wait_until(
        lambda: all(u.ewma_ms is not None for u in gateway.app.registry.upstreams()), what="health checks"
    )

    answers = [infer(client, gateway, **{"x-polycloud-client-region": "nowhere/at-all"}) for _ in range(10)]

    assert clusters_of(answers) == {"fast": 10}


@pytest.mark.parametrize("policy", ["locality", "latency"])
def test_measured_latency_steers_away_from_a_slow_cluster(
    policy: str, make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    fast, slow = make_stub("fast"), make_stub("slow")
    slow.replica.delay_s = 0.3
    routes = table([replica(fast.server, "fast"), replica(slow.server, "slow")])
    gateway = make_gateway(StaticRouteSource(routes), routing_policy=policy)
    wait_until(
        lambda: all(u.ewma_ms is not None for u in gateway.app.registry.upstreams()), what="health checks"
    )

    answers = [infer(client, gateway) for _ in range(20)]

    assert clusters_of(answers) == {"fast": 20}


def _send_and_wait(
    pool: ThreadPoolExecutor, client: httpx.Client, gateway: Gateway, stubs: list[Stub], total: int
) -> Future[httpx.Response]:
    future = pool.submit(infer, client, gateway)
    wait_until(lambda: sum(s.replica.in_flight for s in stubs) == total, what=f"{total} requests in flight")
    return future


def test_least_outstanding_spreads_concurrent_requests(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stubs = [make_stub("a"), make_stub("a")]
    for stub in stubs:
        stub.replica.hold()
    routes = table([replica(s.server, "a") for s in stubs], pattern="single")
    # Held requests outlive any attempt limit: hedging off, or their copies would move the counts.
    gateway = make_gateway(StaticRouteSource(routes), routing_policy="least-outstanding", hedge_overdue=False)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [_send_and_wait(pool, client, gateway, stubs, n + 1) for n in range(8)]
        assert [s.replica.in_flight for s in stubs] == [4, 4]
        for stub in stubs:
            stub.replica.release()
        assert all(f.result().status_code == 200 for f in futures)


def test_standby_serves_only_while_the_active_cluster_is_down(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    active, standby = make_stub("primary"), make_stub("backup")
    routes = table(
        [replica(active.server, "primary", "active"), replica(standby.server, "backup", "standby")],
        pattern="active-passive",
    )
    gateway = make_gateway(StaticRouteSource(routes))

    assert clusters_of([infer(client, gateway) for _ in range(20)]) == {"primary": 20}
    assert standby.replica.hits == 0

    active.stop()
    assert clusters_of([infer(client, gateway) for _ in range(30)]) == {"backup": 30}

    active.restart()
    wait_until(lambda: infer(client, gateway).headers["x-polycloud-cluster"] == "primary", what="fail-back")
    assert clusters_of([infer(client, gateway) for _ in range(20)]) == {"primary": 20}


def test_standby_serves_while_the_active_replica_is_not_ready(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    active, standby = make_stub("primary"), make_stub("backup")
    routes = table(
        [replica(active.server, "primary", "active"), replica(standby.server, "backup", "standby")],
        pattern="active-passive",
    )
    gateway = make_gateway(StaticRouteSource(routes))

    active.replica.ready = False
    wait_until(lambda: infer(client, gateway).headers["x-polycloud-cluster"] == "backup", what="failover")
    assert clusters_of([infer(client, gateway) for _ in range(10)]) == {"backup": 10}


def test_burst_takes_overflow_past_the_threshold(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    active, burst = make_stub("primary"), make_stub("burst")
    active.replica.hold()
    burst.replica.hold()
    routes = table(
        [replica(active.server, "primary", "active"), replica(burst.server, "burst", "burst")],
        pattern="burst",
    )
    gateway = make_gateway(
        StaticRouteSource(routes), burst_threshold=2, routing_policy="least-outstanding", hedge_overdue=False
    )  # held requests outlive any attempt limit: no hedged copies
    stubs = [active, burst]

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [_send_and_wait(pool, client, gateway, stubs, n + 1) for n in range(2)]
        assert (active.replica.in_flight, burst.replica.in_flight) == (2, 0)
        futures += [_send_and_wait(pool, client, gateway, stubs, n + 3) for n in range(2)]
        assert (active.replica.in_flight, burst.replica.in_flight) == (2, 2)
        active.replica.release()
        burst.replica.release()
        assert clusters_of([f.result() for f in futures]) == {"primary": 2, "burst": 2}
