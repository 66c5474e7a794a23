"""Hedged requests through real HTTP: a stalled replica stops setting the tail, early when the service
opts in with a percentile, at the attempt limit by default, never when hedging is switched off."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx

from polycloud.gateway import GatewaySettings, StaticRouteSource
from polycloud.gateway.hedging import MIN_SAMPLES
from polycloud.gateway.routes import RouteTable

from .support import INFER_BODY, MakeGateway, MakeStub, Stub, replica, table

STALL_S = 1.0


def routes(stubs: list[Stub], hedge: float | None) -> RouteTable:
    service = table([replica(s.server, s.replica.cluster) for s in stubs]).services["m"]
    return RouteTable.of([replace(service, hedge=hedge)])


def slowest_answer(client: httpx.Client, url: str, n: int) -> float:
    worst = 0.0
    for _ in range(n):
        started = time.perf_counter()
        answer = client.post(f"{url}/v2/models/m/infer", json=INFER_BODY)
        assert answer.status_code == 200, answer.text
        worst = max(worst, time.perf_counter() - started)
    return worst


def stall_one_after_warm_up(
    make_stub: MakeStub,
    make_gateway: MakeGateway,
    client: httpx.Client,
    hedge: float | None,
    **settings: Any,
) -> tuple[float, bytes]:
    stubs = [make_stub("a"), make_stub("b")]
    gateway = make_gateway(StaticRouteSource(routes(stubs, hedge)), routing_policy="latency", **settings)
    slowest_answer(client, gateway.url, MIN_SAMPLES + 20)  # learn the usual latency
    preferred = min(gateway.app.registry.upstreams(), key=lambda u: u.expected_ms)
    stalled = next(s for s in stubs if s.url.rstrip("/") == preferred.endpoint)
    stalled.replica.infer_delay_s = STALL_S  # the next request goes there first
    worst = slowest_answer(client, gateway.url, 12)
    return worst, client.get(f"{gateway.url}/metrics").content


def test_a_hedged_service_answers_from_the_other_replica_when_one_stalls(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    worst, metrics = stall_one_after_warm_up(make_stub, make_gateway, client, hedge=95)
    assert worst < STALL_S / 2, f"slowest answer {worst:.3f} s"
    assert b'polycloud_gateway_hedges_total{service="m"}' in metrics


def test_by_default_an_attempt_is_hedged_once_it_outlives_its_limit(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    worst, metrics = stall_one_after_warm_up(make_stub, make_gateway, client, hedge=None)
    floor = GatewaySettings().attempt_floor_s  # the stub answers in ms: its limit is the floor
    assert worst < STALL_S / 2, f"slowest answer {worst:.3f} s (limit {floor} s)"
    assert b'polycloud_gateway_hedges_total{service="m"}' in metrics


def test_with_hedging_switched_off_the_stalled_replica_sets_the_tail(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    worst, metrics = stall_one_after_warm_up(make_stub, make_gateway, client, hedge=None, hedge_overdue=False)
    assert worst >= STALL_S
    assert b"polycloud_gateway_hedges_total{" not in metrics
