"""Load reporting: the window's figures on a fake clock, the sink in a worker thread, and a live gateway."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from polycloud.errors import TransientError
from polycloud.exchange import LoadReport
from polycloud.gateway import GatewaySettings, ReplicaRoute, StaticRouteSource, create_app
from polycloud.gateway.locality import Locator
from polycloud.gateway.reporting import LoadReporter, LoadWindow, RecordingMetrics, percentile
from polycloud.gateway.running import SERVER_OPTIONS
from polycloud.gateway.sourcing import StoreLoadSink
from polycloud.gateway.tokens import TokenUsage
from polycloud.gateway.upstreams import UpstreamRegistry
from polycloud.state import Store

from .support import FAST, INFER_BODY, ServerThread, Stub, StubReplica, replica, table, wait_until


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeSink:
    """Keeps every report; fails while `failure` is set. Records the thread each report came from."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, list[LoadReport]]] = []
        self.threads: list[str] = []
        self.failure: str | None = None
        self._lock = threading.Lock()

    def report(self, gateway_id: str, samples: list[LoadReport]) -> None:
        if self.failure is not None:
            raise TransientError(self.failure)
        with self._lock:
            self.reports.append((gateway_id, samples))
            self.threads.append(threading.current_thread().name)


def registry() -> UpstreamRegistry:
    routes = [
        ReplicaRoute("e0", "east", "active", "http://127.0.0.1:41000", "ready"),
        ReplicaRoute("e1", "east", "active", "http://127.0.0.1:41001", "ready"),
        ReplicaRoute("w0", "west", "burst", "http://127.0.0.1:41002", "ready"),
    ]
    reg = UpstreamRegistry(Locator(None), None)
    reg.apply(table(routes, service="m", pattern="burst"))
    return reg


def outstanding(reg: UpstreamRegistry, **counts: int) -> None:
    for upstream in reg.upstreams():
        upstream.outstanding = counts.get(upstream.id, 0)


def test_reporter_reports_in_flight_rate_errors_and_p99_per_cluster() -> None:
    reg, sink, clock, window = registry(), FakeSink(), FakeClock(), LoadWindow()
    reporter = LoadReporter(sink, reg, window, "gw-1", clock=clock)
    outstanding(reg, e0=2, e1=2)
    reporter.sample()
    outstanding(reg, e0=4, e1=4, w0=1)
    reporter.sample()
    outstanding(reg, e0=3, e1=3, w0=3)  # the closing sample
    for i in range(100):
        window.answered("m", "east", 500 if i < 5 else 200, (i + 1) / 1000)
    window.answered("m", "", 429, 0.0)  # answered by the gateway itself: no cluster to charge
    clock.now += 2.0

    assert asyncio.run(reporter.report())
    [(gateway_id, samples)] = sink.reports
    assert gateway_id == "gw-1" and sink.threads[0].startswith("gateway-load")
    east, west = samples
    assert (east.service, east.cluster, east.in_flight, east.in_flight_mean) == ("m", "east", 6.0, 6.0)
    assert (east.rps, east.error_rate, east.p99_ms) == (50.0, 0.05, 99.0)
    assert (west.cluster, west.in_flight, west.rps, west.p99_ms) == ("west", 3.0, 0.0, 0.0)
    assert west.in_flight_mean == pytest.approx(4 / 3)

    clock.now += 1.0  # a quiet window starts afresh
    outstanding(reg)
    assert asyncio.run(reporter.report())
    assert [(s.cluster, s.in_flight_mean, s.rps) for s in sink.reports[1][1]] == [
        ("east", 0.0, 0.0),
        ("west", 0.0, 0.0),
    ]
    reporter.close()


def test_a_failing_sink_drops_the_window_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    sink, window = FakeSink(), LoadWindow()
    reporter = LoadReporter(sink, registry(), window, "gw-1", clock=FakeClock())
    sink.failure = "database busy"
    assert not asyncio.run(reporter.report())
    assert not asyncio.run(reporter.report())
    assert caplog.text.count("database busy") == 1
    sink.failure = None
    assert asyncio.run(reporter.report())
    assert len(sink.reports) == 1
    reporter.close()


def test_recording_metrics_feed_the_window() -> None:
    window = LoadWindow()
    metrics = RecordingMetrics(window)
    metrics.answered("m", "east", 200, 0.010)
    metrics.answered("m", "east", 200, 0.002)
    metrics.answered("m", "east", 200, 0.004)
    assert [(s.cluster, s.rps, s.p50_ms, s.p99_ms) for s in window.close(1.0)] == [("east", 3.0, 4.0, 10.0)]
    assert b'polycloud_gateway_requests_total{cluster="east",code="200",service="m"} 3.0' in metrics.render()
    assert percentile([], 0.99) == 0.0 and percentile([3.0, 1.0, 2.0], 0.5) == 2.0


def test_store_load_sink_writes_load_reports(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        StoreLoadSink(store).report("gw-1", [LoadReport("m", "east", 3.0, 2.5, 40.0, 0.1, 12.0, 4.0)])
        [row] = store.load(max_age_s=60)
    assert (row.gateway_id, row.service, row.cluster, row.in_flight_mean, row.rps, row.p50_ms) == (
        "gw-1",
        "m",
        "east",
        2.5,
        40.0,
        4.0,
    )


def test_llm_tokens_are_reported_per_cluster_and_window() -> None:
    window = LoadWindow()
    metrics = RecordingMetrics(window)
    metrics.answered("chat", "east", 200, 0.5)
    metrics.streamed("chat", "east", 3, TokenUsage(prompt=12, completion=30, first_token_s=0.01))
    metrics.streamed("chat", "east", 3, TokenUsage(prompt=8, completion=10))
    metrics.streamed("chat", "west", 3, TokenUsage(prompt=5))
    metrics.streamed("chat", "west", 3, TokenUsage())  # no usage at all: nothing to count
    samples = {s.cluster: s for s in window.close(1.0)}
    assert (samples["east"].prompt_tokens, samples["east"].completion_tokens) == (20, 40)
    assert (samples["west"].prompt_tokens, samples["west"].completion_tokens, samples["west"].rps) == (
        5,
        0,
        0.0,
    )
    assert all(s.prompt_tokens == s.completion_tokens == 0 for s in window.close(1.0))  # a new window
    assert (
        b'polycloud_gateway_llm_tokens_total{cluster="east",kind="prompt",revision="3",service="chat"} 20.0'
        in (metrics.render())
    )


class FailingHeartbeatSink(FakeSink):
    """Takes the load reports, then fails the heartbeat (as a store without members would)."""

    def heartbeat(self, routed: object) -> None:
        raise TransientError("members table is locked")


def test_tokens_of_an_unwritten_window_go_with_the_next_one_and_are_never_counted_twice() -> None:
    sink, window = FakeSink(), LoadWindow()
    reporter = LoadReporter(sink, registry(), window, "gw-1", clock=FakeClock())
    window.served("m", "east", 100, 50)
    sink.failure = "database down"
    assert not asyncio.run(reporter.report())
    window.served("m", "east", 1, 1)
    sink.failure = None
    assert asyncio.run(reporter.report())
    [(_, samples)] = sink.reports
    [east] = [r for r in samples if r.cluster == "east"]
    assert (east.prompt_tokens, east.completion_tokens) == (101, 51)

    half = FailingHeartbeatSink()
    reporter = LoadReporter(half, registry(), window, "gw-1", clock=FakeClock())
    window.served("m", "east", 7, 7)
    assert not asyncio.run(reporter.report())  # the reports were written, the heartbeat was not
    assert asyncio.run(reporter.report()) is False
    assert [sum(r.prompt_tokens for r in samples) for _, samples in half.reports] == [7, 0]
    reporter.close()


def test_a_windows_inter_token_latency_is_the_mean_gap_over_its_streamed_tokens(tmp_path: Path) -> None:
    window = LoadWindow()
    window.served("m", "east", 10, 11, inter_token_s=0.010)  # 10 gaps of 10 ms
    window.served("m", "east", 10, 31, inter_token_s=0.020)  # 30 gaps of 20 ms
    window.served("m", "east", 10, 40)  # a whole answer: tokens, no gaps
    window.served("m", "west", 5, 1, inter_token_s=0.5)  # one token: no gap
    east, west = window.close(1.0)
    assert (east.completion_tokens, east.inter_token_ms) == (82, pytest.approx(17.5))
    assert west.inter_token_ms == 0.0
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        StoreLoadSink(store).report("gw-1", [east])
        [stored] = store.load(max_age_s=60)
    assert stored.inter_token_ms == pytest.approx(17.5)


def test_store_load_sink_writes_tokens_that_the_store_sums(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        sink = StoreLoadSink(store)
        sink.report(
            "gw-1",
            [LoadReport("chat", "east", 1.0, 1.0, 2.0, 0.0, 9.0, prompt_tokens=30, completion_tokens=70)],
        )
        sink.report(
            "gw-2",
            [LoadReport("chat", "east", 1.0, 1.0, 2.0, 0.0, 9.0, prompt_tokens=3, completion_tokens=7)],
        )
        [served] = store.tokens_served()
    assert (served.service, served.cluster, served.prompt, served.completion, served.total) == (
        "chat",
        "east",
        33,
        77,
        110,
    )


@pytest.fixture
def stub() -> Iterator[Stub]:
    replica_app = StubReplica("east")
    served = Stub(replica_app, ServerThread(replica_app).start())
    yield served
    served.stop(force=True)


def test_a_running_gateway_reports_its_load(stub: Stub) -> None:
    sink = FakeSink()
    source = StaticRouteSource(table([replica(stub.server, "east")]))
    app = create_app(
        source, GatewaySettings(**FAST), rng=random.Random(7), load_sink=sink, gateway_id="gw-test"
    )
    server = ServerThread(app, lifespan="on", **SERVER_OPTIONS).start()
    try:
        with httpx.Client(trust_env=False, timeout=30.0) as client:
            answer = client.post(f"{server.url}/v2/models/m/infer", json=INFER_BODY)
        assert answer.status_code == 200

        def answered() -> bool:
            return any(s.rps > 0 for _, samples in list(sink.reports) for s in samples)

        wait_until(answered, what="a load report with the answer")
        gateway_id, samples = sink.reports[-1]
        assert gateway_id == "gw-test" and [(s.service, s.cluster) for s in samples] == [("m", "east")]
    finally:
        server.stop()
