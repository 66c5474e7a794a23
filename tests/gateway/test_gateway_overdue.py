"""Replicas that accept and never answer: attempt limits from observed latency, hedging at the limit,
health checks that time out fast, and slow but healthy models that are never cut off."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from polycloud.gateway import (
    ClusterRoute,
    GatewaySettings,
    ReplicaRoute,
    RouteTable,
    ServiceRoutes,
    StaticRouteSource,
)
from polycloud.gateway.background import HealthChecker
from polycloud.gateway.ejection import make_ejection_policy
from polycloud.gateway.forwarding import Failure, Forwarder, Reply
from polycloud.gateway.hedging import Hedger, LatencyWindow
from polycloud.gateway.locality import Locator
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.policies import make_routing_policy
from polycloud.gateway.proxy import Proxy
from polycloud.gateway.selecting import Selector
from polycloud.gateway.upstreams import Upstream, UpstreamRegistry

from .support import INFER_BODY, Gateway, MakeGateway, MakeStub, bind, replica, table, wait_until

HOME = "aws/us-east-1"
NEAR = ClusterRoute("frozen", "aws", "us-east-1", 38.99, -77.45)
FAR = ClusterRoute("fine", "aws", "us-west-2", 45.6, -121.2)


def infer(client: httpx.Client, gateway: Gateway) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    answer = client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY)
    return answer, time.perf_counter() - began


# ------------------------------------------------------------------------------------ the limits


def test_a_service_without_answers_starts_at_the_floor_and_learns_a_slow_model_at_once() -> None:
    settings = GatewaySettings()
    hedger = Hedger(settings)
    assert hedger.limit_s("m") == settings.attempt_floor_s == 0.25

    hedger.observe("m", 2.0)  # one 2 s inference
    assert hedger.limit_s("m") == 4.0  # 2 × p99: never cut off, hedged only past 4 s
    hedger.observe("m", 4.0)
    assert hedger.limit_s("m") == settings.attempt_timeout_s == 5.0  # capped


def test_the_limit_is_twice_the_p99_and_shrugs_off_a_rare_stall() -> None:
    window = LatencyWindow(GatewaySettings())
    for i in range(1000):
        window.add(0.2 + (i % 10) / 1000)  # 200–209 ms
    assert window.limit_s == pytest.approx(2 * 0.209)
    window.add(3.0)  # one stall: one sample in a thousand, above the p99
    assert window.limit_s == pytest.approx(2 * 0.209)
    for _ in range(20):
        window.add(1.0)  # the service turned slow: followed as soon as it is the p99, not at a refresh
    assert window.limit_s == pytest.approx(2.0)


def test_a_fast_service_keeps_the_floor_and_the_settings_bound_it() -> None:
    window = LatencyWindow(GatewaySettings(attempt_floor_s=0.1, attempt_latency_factor=3))
    window.add(0.002)
    assert window.limit_s == 0.1
    tight = LatencyWindow(GatewaySettings(attempt_floor_s=0.5, attempt_timeout_s=0.3))
    assert tight.limit_s == 0.3  # the cap wins over the floor


# ---------------------------------------------------------------------------- health check timeouts


class SleepyForwarder(Forwarder):
    """Answers health checks after a scripted delay (None: never, the check times out at its cap)."""

    def __init__(self, delays: list[float | None]) -> None:
        super().__init__(GatewaySettings())
        self.delays = delays

    async def probe(self, upstream: Upstream, path: str, timeout_s: float) -> Reply | Failure:
        delay = self.delays.pop(0)
        if delay is None or delay > timeout_s:
            await asyncio.sleep(timeout_s)
            return Failure("timeout", "no answer")
        await asyncio.sleep(delay)
        return Reply(200, [], b"", delay * 1000.0)


def one_upstream() -> tuple[Upstream, UpstreamRegistry]:
    """A replica and a registry that tracks only it."""
    u = Upstream("m", ReplicaRoute("a-0", "a", "active", "http://127.0.0.1:9", "ready"), None, 0.0)

    class Only(UpstreamRegistry):
        def upstreams(self) -> Iterator[Upstream]:
            return iter([u])

    return u, Only(Locator(None), None)


def test_a_late_health_answer_cancels_the_timeout_and_teaches_the_limit() -> None:
    u, registry = one_upstream()
    settings = GatewaySettings(health_timeout_s=0.05, health_timeout_max_s=2.0)
    checker = HealthChecker(registry, SleepyForwarder([0.2, 0.2]), settings)

    async def main() -> None:
        assert await checker.check(u)  # timed out at 50 ms, answered at 200 ms: healthy, limit learnt
        assert u.health_timeouts == 0 and u.health_ms == pytest.approx(200.0)
        assert checker.limit_s(u) == pytest.approx(0.6)
        assert await checker.check(u) and u.health_timeouts == 0  # within its limit now

    asyncio.run(main())


def test_health_checks_timed_out_twice_in_a_row_mark_the_replica_silent() -> None:
    u, registry = one_upstream()
    settings = GatewaySettings(health_timeout_s=0.05, health_timeout_max_s=0.5, health_interval_s=0.1)
    checker = HealthChecker(registry, SleepyForwarder([None]), settings)

    async def main() -> None:
        checker.sweep()  # starts the check
        await asyncio.sleep(0.1)  # its limit passed: one timeout
        assert u.health_timeouts == 1 and u.healthy
        checker.sweep()  # still unanswered a round later: two
        assert u.health_timeouts == 2 and not u.healthy and u.silent
        await asyncio.sleep(0.5)  # no answer by the cap either
        assert not u.healthy and u.silent and not checker._checks

    asyncio.run(main())


# ------------------------------------------------------------------------- through real HTTP


@pytest.fixture
def black_hole() -> Iterator[socket.socket]:
    """A listening socket that nothing accepts from: the kernel completes connections, nothing answers
    (what a SIGSTOPped replica looks like)."""
    sock = bind()
    yield sock
    sock.close()


def test_a_replica_that_never_answers_costs_about_one_limit_and_is_then_left_alone(
    black_hole: socket.socket, make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    fine = make_stub("fine")
    frozen = ReplicaRoute(
        "frozen-0", "frozen", "active", f"http://127.0.0.1:{black_hole.getsockname()[1]}", "ready"
    )
    routes = table([frozen, replica(fine.server, "fine")], clusters=[NEAR, FAR])
    gateway = make_gateway(StaticRouteSource(routes), region=HOME, health_interval_s=1.0)
    stuck = next(u for u in gateway.app.registry.upstreams() if u.cluster == "frozen")

    first = [infer(client, gateway) for _ in range(5)]
    wait_until(lambda: not stuck.healthy, what="the silent replica to be held out", timeout_s=10)
    after = [infer(client, gateway) for _ in range(20)]

    assert [a.status_code for a, _ in first + after] == [200] * 25
    assert all(a.headers["x-polycloud-cluster"] == "fine" for a, _ in first + after)
    floor = GatewaySettings().attempt_floor_s
    assert first[0][1] >= floor and first[0][0].headers["x-polycloud-tried"] == "frozen"
    assert max(took for _, took in first) < 4 * floor  # one limit and a quick answer, not 5 s
    assert stuck.silent and not stuck.usable(time.monotonic())
    assert not any("x-polycloud-tried" in a.headers for a, _ in after)  # no request waits on it any more
    metrics = client.get(f"{gateway.url}/metrics").text
    assert 'polycloud_gateway_attempts_total{cluster="frozen",outcome="timeout",service="m"}' in metrics


def test_a_slow_model_is_hedged_at_first_but_never_cut_off_nor_ejected(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stubs = [make_stub("a"), make_stub("b")]
    for stub in stubs:
        stub.replica.infer_delay_s = 1.0  # seconds per inference, health checks as quick as ever
    gateway = make_gateway(StaticRouteSource(table([replica(s.server, s.replica.cluster) for s in stubs])))

    answers = [infer(client, gateway) for _ in range(4)]

    assert [a.status_code for a, _ in answers] == [200] * 4
    assert all(took >= 1.0 for _, took in answers)
    assert answers[0][0].headers.get("x-polycloud-tried")  # no answers yet: hedged at the floor
    assert not any("x-polycloud-tried" in a.headers for a, _ in answers[1:])  # the limit learnt: 2 s
    assert all(u.healthy and not u.consecutive_failures for u in gateway.app.registry.upstreams())
    assert "polycloud_gateway_ejections_total{" not in client.get(f"{gateway.url}/metrics").text


def test_a_lone_replica_slow_to_answer_even_its_health_checks_still_serves(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("far")
    stub.replica.delay_s = 0.8  # every answer, health checks included (a far or browned-out cluster)
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "far")])), health_timeout_s=0.2)

    answers = [infer(client, gateway) for _ in range(4)]

    assert [a.status_code for a, _ in answers] == [200] * 4
    assert all(took >= 0.8 for _, took in answers)
    upstream = next(gateway.app.registry.upstreams())
    wait_until(lambda: upstream.healthy and upstream.health_ms, what="its checks learnt", timeout_s=10)
    assert upstream.health_ms is not None and upstream.health_ms >= 800


# ------------------------------------------------------------------- the race, in process


class Scripted(Forwarder):
    """Answers attempts after a delay per cluster (None: never); records what was sent where."""

    def __init__(self, delays: dict[str, float | None]) -> None:
        super().__init__(GatewaySettings())
        self.delays = delays
        self.sent: list[str] = []

    async def send(
        self,
        upstream: Upstream,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> Reply | Failure:
        self.sent.append(upstream.cluster)
        delay = self.delays[upstream.cluster]
        if delay is None or delay > timeout_s:
            await asyncio.sleep(timeout_s)
            return Failure("timeout", "no answer")
        await asyncio.sleep(delay)
        return Reply(200, [], b"{}", delay * 1000.0)


def in_process(
    delays: dict[str, float | None], policy: str = "least-outstanding", **settings_: Any
) -> tuple[Proxy, Scripted, UpstreamRegistry]:
    settings = GatewaySettings(routing_policy=policy, **settings_)
    locator = Locator(None)
    registry = UpstreamRegistry(locator, None)
    routes = tuple(
        ReplicaRoute(f"{c}-0", c, "active", f"http://127.0.0.1:{9000 + i}", "ready")
        for i, c in enumerate(delays)
    )
    registry.apply(RouteTable.of([ServiceRoutes("m", "active-active", routes)]))
    forwarder = Scripted(delays)
    routing = make_routing_policy(settings, locator, random.Random(1))
    proxy = Proxy(
        settings,
        registry,
        Selector(settings, routing),
        forwarder,
        make_ejection_policy(settings),
        locator,
        GatewayMetrics(),
    )
    return proxy, forwarder, registry


async def request(proxy: Proxy) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "POST", "headers": []}
    await proxy.handle(scope, receive, send, "m", "/v2/models/m/infer")
    return sent


def test_the_copy_that_answers_first_wins_and_silences_the_replica_left_waiting() -> None:
    proxy, forwarder, registry = in_process({"a": None, "b": 0.005})
    next(u for u in registry.upstreams() if u.cluster == "b").ewma_ms = 50.0  # "a" looks faster

    async def main() -> None:
        began = time.monotonic()
        start, _ = await request(proxy)
        took = time.monotonic() - began
        assert start["status"] == 200 and (b"x-polycloud-cluster", b"b") in start["headers"]
        assert (b"x-polycloud-tried", b"a") in start["headers"]
        assert 0.25 <= took < 0.25 + 0.2  # the floor, a watchdog tick, the copy's 5 ms
        assert [u.silent for u in registry.upstreams()] == [True, False]
        await request(proxy)  # "a" is out: straight to "b"
        assert forwarder.sent[-1] == "b"
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]  # "a" was cancelled

    asyncio.run(main())


def test_a_request_cancelled_mid_race_is_cancelled_with_both_copies() -> None:
    proxy, _, registry = in_process({"a": None, "b": 5.0})
    next(u for u in registry.upstreams() if u.cluster == "b").ewma_ms = 50.0  # "a" first

    async def main() -> None:
        task = asyncio.create_task(request(proxy))
        await asyncio.sleep(0.4)  # the copy on "b" is out
        assert len(asyncio.all_tasks()) == 3  # main, the request, the copy
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


def test_requests_already_waiting_on_a_replica_found_silent_move_on_at_once() -> None:
    # Attempts are limited to 1 s here, so that the two outcomes lie far apart on a loaded machine.
    proxy, _, registry = in_process({"a": None, "b": 0.005}, policy="latency", attempt_floor_s=1.0)
    next(u for u in registry.upstreams() if u.cluster == "b").ewma_ms = 50.0  # "a" first, twice

    async def later() -> float:
        await asyncio.sleep(0.9)
        began = time.monotonic()
        await request(proxy)
        return time.monotonic() - began

    async def main() -> float:
        _, waited = await asyncio.gather(request(proxy), later())
        return waited

    # The second request would wait out its own 1 s limit; it moves on when the first proves "a" silent,
    # ~0.1 s after it began.
    assert asyncio.run(main()) < 0.55
