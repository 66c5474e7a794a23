"""Trace ids from request ids, W3C traceparent, the JSON-lines span exporter and JSON logs."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from polycloud.telemetry import logs, tracing
from polycloud.telemetry.recording import SpanRecorder


def test_trace_ids_come_from_32_hex_digit_request_ids() -> None:
    assert tracing.trace_id_of("4bf92f3577b34da6a3ce929d0e0e4736") == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert tracing.trace_id_of("0" * 32) == 0
    assert tracing.trace_id_of("order-17") == 0 and tracing.trace_id_of(None) == 0
    assert tracing.new_trace_id() != 0


def test_traceparent_round_trip_and_garbage() -> None:
    header = tracing.traceparent(0xABC, 0xDEF)
    assert header == "00-00000000000000000000000000000abc-0000000000000def-01"
    parent = tracing.parse_traceparent(header)
    assert parent is not None and (parent.trace_id, parent.span_id, parent.is_remote) == (0xABC, 0xDEF, True)
    for bad in (
        None,
        "",
        "00-xyz",
        "01-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "00-" + "0" * 32 + "-" + "b" * 16 + "-01",
    ):
        assert tracing.parse_traceparent(bad) is None


def test_spans_go_to_a_json_lines_file_under_home(tmp_path: Path) -> None:
    recorder = SpanRecorder(tracing.make_exporter("gateway", tmp_path, {}), "polycloud-gateway")
    root = recorder.start("POST m", SpanKind.SERVER, 0x1234, attributes={"polycloud.service": "m"})
    child = recorder.start("attempt", SpanKind.CLIENT, root.trace_id, root.span_id)
    recorder.end(child, error=True)
    recorder.end(root)
    recorder.shutdown()
    spans = {s["name"]: s for s in tracing.read_spans(tmp_path / "traces")}
    assert {s["traceId"] for s in spans.values()} == {f"{0x1234:032x}"}
    assert (
        spans["attempt"]["parentSpanId"] == spans["POST m"]["spanId"]
        and spans["POST m"]["parentSpanId"] is None
    )
    assert spans["attempt"]["status"] == "ERROR" and spans["POST m"]["attributes"] == {
        "polycloud.service": "m"
    }
    assert all(s["service"] == "polycloud-gateway" for s in spans.values())


class Captured(SpanExporter):
    """Keeps the `ReadableSpan`s it is given (the OTLP path of the recorder)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += spans
        return SpanExportResult.SUCCESS


def test_fast_json_lines_are_the_sdk_rendering_byte_for_byte(tmp_path: Path) -> None:
    """The recorder formats JSON lines itself; they must be what `span_json` + `json.dumps` give."""
    captured = Captured()
    fast = SpanRecorder(tracing.make_exporter("g", tmp_path, {}), 'svc "é"', interval_s=60)
    slow = SpanRecorder(captured, 'svc "é"', interval_s=60)
    attributes: dict[str, str | bool | int | float] = {
        "s": 'quote " back \\ nl \n é ☃',
        "t": True,
        "i": 200,
        "f": 1.5,
    }
    for recorder in (fast, slow):
        root = recorder.start('POST "m" ☃', SpanKind.SERVER, 0xABC, 0, True, dict(attributes))
        root.span_id = 7  # random otherwise
        child = recorder.start("attempt", SpanKind.CLIENT, root.trace_id, root.span_id)
        child.span_id = 8
        recorder.end(child, error=True)
        recorder.end(root)
        recorder.flush()
    fast.shutdown()
    slow.shutdown()
    lines = next((tmp_path / "traces").glob("*.jsonl")).read_text(encoding="utf-8").splitlines()
    expected = [json.dumps(tracing.span_json(s), separators=(",", ":"), default=str) for s in captured.spans]
    for line in lines + expected:  # start and end times differ between the two recorders
        assert '"start":' in line
    strip = [re.sub(r'"(start|end)":\d+', "", line) for line in lines]
    assert strip == [re.sub(r'"(start|end)":\d+', "", line) for line in expected]


def test_a_full_queue_drops_spans_instead_of_waiting(tmp_path: Path) -> None:
    recorder = SpanRecorder(tracing.make_exporter("g", tmp_path, {}), "g", interval_s=60, max_queue=2)
    for _ in range(5):
        recorder.end(recorder.start("s", SpanKind.INTERNAL, 1))
    assert recorder.dropped == 3
    assert recorder.flush() == 2
    recorder.shutdown()


def test_otlp_is_used_when_its_endpoint_is_set(tmp_path: Path) -> None:
    exporter = tracing.make_exporter("g", tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert type(exporter).__name__ == "OTLPSpanExporter"
    exporter.shutdown()


def test_json_logs_carry_the_fields_and_static_identity() -> None:
    stream = io.StringIO()
    writer = logs.configure(stream, component="gateway")
    try:
        logs.request_logger("gateway").info("request", request_id="r1", trace_id="t1", status=200)
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        line = json.loads(stream.getvalue().splitlines()[0])
        assert line["event"] == "request" and line["request_id"] == "r1" and line["trace_id"] == "t1"
        assert line["component"] == "gateway" and line["level"] == "info" and "timestamp" in line
    finally:
        writer.close()
        structlog.reset_defaults()
