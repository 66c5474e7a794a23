"""Flag evaluations per variant and report window: every evaluation of the board (OFREP single and
bulk, routing decisions) is counted by outcome, reported with the load from the worker thread, kept
for the next window when the write fails, and summed per minute by the store."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import httpx
from openfeature.evaluation_context import EvaluationContext

from polycloud.errors import TransientError
from polycloud.exchange import FlagCount
from polycloud.gateway import GatewaySettings, RouteTable, StaticRouteSource, create_app
from polycloud.gateway.flagboard import FlagBoard
from polycloud.gateway.flagcount import FlagWindow
from polycloud.gateway.flagrouting import FlagRouter
from polycloud.gateway.ofrep import OfrepFront
from polycloud.gateway.reporting import LoadReporter, LoadWindow, RecordingMetrics
from polycloud.gateway.routes import FlagRoute, FlagSplit, ServiceRoutes
from polycloud.gateway.running import SERVER_OPTIONS
from polycloud.gateway.sourcing import StoreLoadSink
from polycloud.state import Store

from .support import FAST, INFER_BODY, MakeStub, ServerThread, replica, wait_until
from .test_gateway_reporting import FakeClock, FakeSink, registry

SPLIT: dict[str, Any] = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
    "targeting": {"fractional": [["on", 30], ["off", 70]]},
}


def counting(**definitions: dict[str, Any]) -> tuple[FlagBoard, FlagWindow, RecordingMetrics]:
    flags = FlagWindow()
    metrics = RecordingMetrics(LoadWindow(), flags)
    board = FlagBoard(metrics)
    board.apply({key: FlagRoute(key, d) for key, d in definitions.items()})
    return board, flags, metrics


def outcomes(counts: list[FlagCount]) -> dict[tuple[str, str, str], int]:
    return {(c.flag, c.variant, c.error): c.count for c in counts}


def test_each_evaluation_is_counted_under_its_variant_no_variant_or_error_code() -> None:
    disabled = {**SPLIT, "state": "DISABLED"}
    text = {"state": "ENABLED", "variants": {"a": "x"}, "defaultVariant": "a", "targeting": {"/": [1, 0]}}
    board, flags, metrics = counting(split=SPLIT, off=disabled, broken=text)
    for i in range(200):
        board.evaluate("split", EvaluationContext(f"user-{i}"))
    board.evaluate("off", EvaluationContext("u"))
    board.evaluate("broken", EvaluationContext("u"))  # the rule divides by zero: GENERAL
    board.evaluate("nothing", EvaluationContext("u"))  # no such flag: only /metrics counts it
    counts = outcomes(flags.close())
    assert counts[("split", "on", "")] + counts[("split", "off", "")] == 200
    assert 40 <= counts[("split", "on", "")] <= 80  # about 30 %
    assert counts[("off", "", "")] == 1 and counts[("broken", "", "GENERAL")] == 1
    assert not any(flag == "" for flag, _, _ in counts)
    assert flags.close() == []  # a new window
    assert b'flag_evaluations_total{flag="",reason="FLAG_NOT_FOUND",variant=""} 1.0' in metrics.render()


def test_bulk_answers_count_every_flag_even_when_answered_from_the_kept_answer() -> None:
    board, flags, _ = counting(
        split=SPLIT, fixed={"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}
    )
    context = EvaluationContext("user-1")
    first = board.evaluate_all(context)
    assert board.evaluate_all(context) is first  # the second poll is answered from the kept answer
    counts = outcomes(flags.close())
    assert counts[("fixed", "a", "")] == 2 and sum(n for (f, _, _), n in counts.items() if f == "split") == 2


def test_routing_decisions_are_counted_as_evaluations_of_their_flag() -> None:
    board, flags, _ = counting(canary={**SPLIT, "targeting": None, "defaultVariant": "on"})
    router = FlagRouter(OfrepFront(board, GatewaySettings()))
    router.follow(
        {"ranker": ServiceRoutes("ranker", "single", (), routing=FlagSplit("canary", (("on", "v2"),)))}
    )
    scope = {"headers": [(b"x-polycloud-targeting-key", b"k1")]}
    assert [router.route("ranker", scope) for _ in range(3)] == ["v2"] * 3
    assert outcomes(flags.close()) == {("canary", "on", ""): 3}


class FlagFakeSink(FakeSink):
    """Also a `FlagSink`: keeps the flag counts; fails them alone while `flag_failure` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.flags: list[list[FlagCount]] = []
        self.flag_threads: list[str] = []
        self.flag_failure: str | None = None

    def report_flags(self, gateway_id: str, counts: list[FlagCount]) -> None:
        if self.flag_failure is not None:
            raise TransientError(self.flag_failure)
        self.flags.append(counts)
        self.flag_threads.append(threading.current_thread().name)


def reporter_of(sink: FakeSink, flags: FlagWindow) -> LoadReporter:
    return LoadReporter(sink, registry(), LoadWindow(), "gw-1", clock=FakeClock(), flags=flags)


def test_counts_go_to_the_sink_from_the_worker_thread() -> None:
    sink, flags = FlagFakeSink(), FlagWindow()
    reporter = reporter_of(sink, flags)
    flags.evaluated("split", "on", "SPLIT")
    flags.evaluated("split", "on", "SPLIT")
    assert asyncio.run(reporter.report())
    assert asyncio.run(reporter.report())  # an empty window writes no counts
    assert sink.flags == [[FlagCount("split", "on", "", 2)]]
    assert sink.flag_threads[0].startswith("gateway-load") and sink.flag_threads[0] != "MainThread"
    reporter.close()


def test_counts_of_an_unwritten_window_go_with_the_next_and_are_never_counted_twice() -> None:
    sink, flags = FlagFakeSink(), FlagWindow()
    reporter = reporter_of(sink, flags)
    flags.evaluated("split", "on", "SPLIT")
    sink.failure = "database down"  # the load reports fail: the flag counts are not written either
    assert not asyncio.run(reporter.report())
    flags.evaluated("split", "off", "SPLIT")
    sink.failure, sink.flag_failure = None, "flag table locked"  # the load goes in, the counts do not
    assert not asyncio.run(reporter.report())
    flags.evaluated("split", "on", "SPLIT")
    sink.flag_failure = None
    assert asyncio.run(reporter.report())
    assert sink.flags == [[FlagCount("split", "off", "", 1), FlagCount("split", "on", "", 2)]]
    reporter.close()


def test_a_sink_without_flags_is_not_asked_for_them() -> None:
    sink, flags = FakeSink(), FlagWindow()
    reporter = reporter_of(sink, flags)
    flags.evaluated("split", "on", "SPLIT")
    assert asyncio.run(reporter.report())
    assert len(sink.reports) == 1
    reporter.close()


def test_store_load_sink_adds_counts_that_the_store_sums_over_gateways(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        sink = StoreLoadSink(store)
        sink.report_flags("gw-1", [FlagCount("split", "on", "", 3), FlagCount("split", "", "GENERAL", 1)])
        sink.report_flags("gw-1", [FlagCount("split", "on", "", 4)])
        sink.report_flags("gw-2", [FlagCount("split", "off", "", 10)])
        assert outcomes(store.flag_counts(60)) == {
            ("split", "", "GENERAL"): 1,
            ("split", "off", ""): 10,
            ("split", "on", ""): 7,
        }


def test_a_running_gateway_reports_ofrep_and_routing_evaluations(make_stub: MakeStub) -> None:
    stub = make_stub("east", "m")
    sink = FlagFakeSink()
    split = FlagSplit("canary", (("on", "m"),))
    services = [
        ServiceRoutes("m", "single", (replica(stub.server, "east"),)),
        ServiceRoutes("front", "single", (replica(stub.server, "east"),), routing=split),
    ]
    canary = FlagRoute("canary", {**SPLIT, "targeting": None, "defaultVariant": "on"})
    source = StaticRouteSource(RouteTable.of(services, [], [canary]))
    app = create_app(source, GatewaySettings(**FAST), rng=random.Random(7), load_sink=sink, gateway_id="gw")
    server = ServerThread(app, lifespan="on", **SERVER_OPTIONS).start()
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30.0) as client:
            assert client.post("/ofrep/v1/evaluate/flags/canary", json={}).json()["variant"] == "on"
            assert client.post("/ofrep/v1/evaluate/flags", json={}).status_code == 200
            assert client.post("/v2/models/front/infer", json=INFER_BODY).status_code == 200

        def reported() -> int:
            return sum(c.count for counts in list(sink.flags) for c in counts if c.variant == "on")

        wait_until(lambda: reported() == 3, what="the three evaluations in the flag reports")
    finally:
        server.stop()
