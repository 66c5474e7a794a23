"""One request through the gateway to a real replica makes one trace: the gateway's server span, one
client span per attempt, and the replica's server span, all under the trace id of the request id."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.support import build_model, wait_until

from polycloud.errors import UserError
from polycloud.gateway import GatewaySettings, StaticRouteSource, create_app
from polycloud.gateway.running import SERVER_OPTIONS, request_log_sample
from polycloud.gateway.tracing import GatewayTracer
from polycloud.serving.app import Replica, ServedModel
from polycloud.serving.app import create_app as create_replica_app
from polycloud.serving.faults import Faults, FaultSettings
from polycloud.serving.metrics import ReplicaLabels, ReplicaMetrics
from polycloud.serving.model import load_model
from polycloud.serving.tracing import ReplicaTracer
from polycloud.telemetry import tracing
from polycloud.telemetry.recording import SpanRecorder

from .support import FAST, ServerThread, replica, table

BODY = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[str, InMemorySpanExporter]]:
    """A gateway and a real replica, both tracing into one in-memory exporter; yields the gateway URL."""
    exporter = InMemorySpanExporter()
    recorder = SpanRecorder(exporter, "polycloud-test", interval_s=0.05)
    model = load_model(build_model(tmp_path / "tiny.onnx"), None)
    served = Replica(
        ServedModel("m", "1", model),
        Faults(FaultSettings(0.0, 0.0)),
        ReplicaMetrics(ReplicaLabels("m", "c1", "1")),
        tracer=ReplicaTracer(recorder),
    )
    replica_server = ServerThread(create_replica_app(served)).start()
    source = StaticRouteSource(table([replica(replica_server, "c1")]))
    app = create_app(
        source,
        GatewaySettings(**FAST),
        rng=random.Random(7),
        tracer=GatewayTracer(recorder),
    )
    gateway = ServerThread(app, lifespan="on", **SERVER_OPTIONS).start()
    try:
        yield gateway.url, exporter
    finally:
        gateway.stop()
        replica_server.stop()
        served.close()
        recorder.shutdown()


def _spans_of(exporter: InMemorySpanExporter, trace_id: int, count: int) -> list[ReadableSpan]:
    def found() -> list[ReadableSpan] | None:
        spans = [s for s in exporter.get_finished_spans() if s.context and s.context.trace_id == trace_id]
        return spans if len(spans) >= count else None

    return wait_until(found, 10, "three spans of the trace")


def test_the_request_id_is_the_trace_id_from_gateway_to_replica(
    traced: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = traced
    request_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    answer = httpx.post(f"{url}/v2/models/m/infer", json=BODY, headers={"x-request-id": request_id})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == request_id

    spans = _spans_of(exporter, int(request_id, 16), 3)
    by_kind = {(s.kind, s.name): s for s in spans}
    server = by_kind[(SpanKind.SERVER, "POST m")]
    attempt = by_kind[(SpanKind.CLIENT, "attempt")]
    inference = by_kind[(SpanKind.SERVER, "infer")]
    assert server.parent is None
    assert attempt.parent is not None and server.context is not None
    assert attempt.parent.span_id == server.context.span_id
    assert inference.parent is not None and attempt.context is not None
    assert inference.parent.span_id == attempt.context.span_id
    assert inference.attributes and inference.attributes["polycloud.request_id"] == request_id
    assert attempt.attributes and attempt.attributes["polycloud.cluster"] == "c1"
    assert server.attributes and server.attributes["http.response.status_code"] == 200


def test_without_a_request_id_the_new_trace_id_becomes_the_request_id(
    traced: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = traced
    answer = httpx.post(f"{url}/v2/models/m/infer", json=BODY)
    request_id = answer.headers["x-request-id"]
    assert len(request_id) == 32
    spans = _spans_of(exporter, int(request_id, 16), 3)
    assert {s.name for s in spans} == {"POST m", "attempt", "infer"}


def test_a_request_id_that_is_not_hex_is_kept_and_recorded(traced: tuple[str, InMemorySpanExporter]) -> None:
    url, exporter = traced
    answer = httpx.post(f"{url}/v2/models/m/infer", json=BODY, headers={"x-request-id": "order-17"})
    assert answer.headers["x-request-id"] == "order-17"

    def server_span() -> ReadableSpan | None:
        return next(
            (
                s
                for s in exporter.get_finished_spans()
                if s.name == "POST m"
                and s.attributes
                and s.attributes.get("polycloud.request_id") == "order-17"
            ),
            None,
        )

    span = wait_until(server_span, 10, "the request's span")
    assert span.context is not None
    _spans_of(exporter, span.context.trace_id, 3)


class Lines:
    """A stand-in for the structlog request logger: keeps what would be written."""

    def __init__(self) -> None:
        self.logged: list[dict[str, object]] = []

    def info(self, event: str, **fields: object) -> None:
        self.logged.append(fields)


def test_errors_are_always_logged_and_successes_by_sample(tmp_path: Path) -> None:
    recorder = SpanRecorder(tracing.make_exporter("g", tmp_path, {}), "g", interval_s=60)
    lines = Lines()
    tracer = GatewayTracer(recorder, lines, log_sample=0.0)
    for status in (200, 200, 404, 503):
        span, request_id = tracer.start(None, None, "POST", "m")
        tracer.finish(span, request_id, "m", "c", status, 0.001)
    assert [line["status"] for line in lines.logged] == [404, 503]
    everything = GatewayTracer(recorder, lines, log_sample=1.0)
    span, request_id = everything.start(None, None, "POST", "m")
    everything.finish(span, request_id, "m", "c", 200, 0.001)
    assert lines.logged[-1]["request_id"] == request_id
    recorder.shutdown()
    assert request_log_sample("") == 0.01 and request_log_sample("0.5") == 0.5
    for bad in ("2", "-0.1", "half"):
        with pytest.raises(UserError, match="POLYCLOUD_REQUEST_LOG_SAMPLE"):
            request_log_sample(bad)
