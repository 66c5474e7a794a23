"""Per-inference-key counting at the gateway: the admitted key's id rides in the ASGI scope, answers are
counted per key in bounded memory, and the load reporter writes them from its worker thread."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from polycloud.exchange import KeyLoad, LoadReport
from polycloud.gateway import GatewaySettings, StaticRouteSource, create_app
from polycloud.gateway.keyload import BUCKETS_MS, KEY_ID_SCOPE, KeyWindow, histogram_p99
from polycloud.gateway.reporting import LoadReporter, LoadWindow
from polycloud.gateway.running import SERVER_OPTIONS
from polycloud.gateway.sourcing import StoreLoadSink
from polycloud.state import Store

from .support import FAST, INFER_BODY, MakeStub, ServerThread, replica, table, wait_until
from .test_gateway_reporting import FakeClock, registry
from .test_keys import KEY, OTHER, FakeSource, bearer, guard, limits


class KeyedSink:
    """A load sink that also takes per-key samples (a `KeySink`)."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, list[KeyLoad]]] = []
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def report(self, gateway_id: str, samples: list[LoadReport]) -> None:
        pass

    def report_keys(self, gateway_id: str, samples: list[KeyLoad]) -> None:
        with self._lock:
            self.keys.append((gateway_id, samples))
            self.threads.append(threading.current_thread().name)


def test_the_window_counts_answers_errors_and_latency_per_key() -> None:
    window = KeyWindow()
    for _ in range(98):
        window.answered(1, "m", 200, 0.004)
    window.answered(1, "m", 503, 0.004)
    window.answered(1, "m", 200, 0.9)
    window.answered(2, "n", 200, 0.02)
    [one, two] = window.close(elapsed_s=2.0)
    assert (one.key_id, one.service, one.rps, one.error_rate) == (1, "m", 50.0, 0.01)
    assert one.p99_ms == 5.0  # the bucket holding the 99th of 100 answers
    assert one.mean_ms == pytest.approx((99 * 4.0 + 900.0) / 100)
    assert (two.key_id, two.rps, two.p99_ms) == (2, 0.5, 20.0)  # capped at the slowest answer
    assert window.close(1.0) == []  # a new window begins


def test_the_histogram_p99_never_exceeds_the_slowest_answer() -> None:
    buckets = [0] * (len(BUCKETS_MS) + 1)
    assert histogram_p99(buckets, 0.0) == 0.0
    buckets[3] = 10  # 5-10 ms
    assert histogram_p99(buckets, 7.0) == 7.0
    buckets[-1] = 1  # slower than the last bound: with 11 answers, the 99th percentile is the slowest
    assert histogram_p99(buckets, 30000.0) == 30000.0
    buckets[3] = 200
    assert histogram_p99(buckets, 30000.0) == 10.0


def test_the_guard_leaves_the_admitted_key_id_in_the_scope() -> None:
    keys, _ = guard(limits(), limits(2, OTHER))
    scope: dict[str, object] = {"headers": bearer(OTHER)}
    assert keys.guard("m", scope) is None
    assert scope[KEY_ID_SCOPE] == 2 and scope["headers"] == []
    open_scope: dict[str, object] = {"headers": []}
    assert keys.guard("open", open_scope) is None and KEY_ID_SCOPE not in open_scope
    refused: dict[str, object] = {"headers": bearer("pk_wrong")}
    assert keys.guard("m", refused) is not None and KEY_ID_SCOPE not in refused
    keys.close()


def test_the_reporter_writes_key_samples_from_its_worker_thread() -> None:
    clock, sink, keys = FakeClock(), KeyedSink(), KeyWindow()
    reporter = LoadReporter(sink, registry(), LoadWindow(), "gw", clock=clock, keys=keys)
    keys.answered(7, "m", 200, 0.003)
    keys.answered(7, "m", 500, 0.003)
    clock.now += 2.0
    assert asyncio.run(reporter.report())
    [(gateway_id, [sample])] = sink.keys
    assert gateway_id == "gw" and (sample.key_id, sample.rps, sample.error_rate) == (7, 1.0, 0.5)
    assert sink.threads == ["gateway-load_0"]
    reporter.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def test_a_keyed_gateway_reports_per_key_load_to_the_store(make_stub: MakeStub, store: Store) -> None:
    stub = make_stub("c1")
    routes = StaticRouteSource(table([replica(stub.server, "c1")]))
    app = create_app(
        routes,
        GatewaySettings(**FAST),
        rng=random.Random(7),
        keys=FakeSource([limits(rps=1000.0, burst=1000), limits(2, OTHER, rps=1000.0, burst=1000)]),
        load_sink=StoreLoadSink(store),
        gateway_id="gw-keys",
    )
    server = ServerThread(app, lifespan="on", **SERVER_OPTIONS).start()
    try:
        with httpx.Client(trust_env=False, timeout=30.0) as client:
            url = f"{server.url}/v2/models/m/infer"
            answers = [client.post(url, json=INFER_BODY, headers={"x-api-key": KEY}) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5

        def reported() -> bool:
            return any(r.key_id == 1 and r.rps > 0 for r in store.key_loads(10))

        wait_until(reported, what="a per-key load report")
        [row] = [r for r in store.key_loads(10) if r.rps > 0]
        assert (row.key_id, row.service, row.gateway_id, row.error_rate) == (1, "m", "gw-keys", 0.0)
        assert row.p99_ms > 0
    finally:
        server.stop()
