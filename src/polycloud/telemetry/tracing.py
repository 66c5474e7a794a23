"""Tracing: one trace per request, whose trace id is the request id (32 hex digits).

The gateway derives the trace id from `x-request-id` when that is 32 hex digits (else from a valid
incoming `traceparent`, else a random one that then becomes the request id), starts a server span,
one client span per upstream attempt, and sends each attempt's W3C `traceparent` to the replica, which
continues the trace with a server span of its own.

Spans are recorded cheaply on the request path and exported in batches from a background thread
(`polycloud.telemetry.recording`): over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else as
JSON lines to `$POLYCLOUD_HOME/traces/<component>-<pid>.jsonl` (one file per process, so that
processes never interleave writes).
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
MAX_REQUEST_ID = 128
"""Longest `x-request-id` kept: a longer one (or one with spaces or control characters) is replaced, so a
client cannot make every log line and echoed header carry 100 KB of its choosing."""


def usable_request_id(value: str | None) -> str | None:
    """`value` when it is a usable request id (1 to 128 visible ASCII characters), else None."""
    if value is None or len(value) > MAX_REQUEST_ID or not _REQUEST_ID.fullmatch(value):
        return None
    return value


def trace_id_of(request_id: str | None) -> int:
    """The trace id a request id stands for: its value when it is 32 hex digits (not all 0), else 0."""
    if request_id is None or len(request_id) != 32 or not _HEX32.fullmatch(request_id):
        return 0
    return int(request_id, 16)


def new_trace_id() -> int:
    """A random, valid (non-zero) 128-bit trace id."""
    return random.getrandbits(128) or 1


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote parent of a W3C `traceparent` header (version 00), None when absent or malformed."""
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match[3], 16)))


def traceparent(trace_id: int, span_id: int, sampled: bool = True) -> str:
    """A W3C `traceparent` header value."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def span_json(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as a JSON object (ids in hex, times in Unix nanoseconds)."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "traceId": f"{context.trace_id:032x}" if context else "",
        "spanId": f"{context.span_id:016x}" if context else "",
        "parentSpanId": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "service": str(span.resource.attributes.get("service.name", "")),
    }


class JsonLinesExporter(SpanExporter):
    """Appends finished spans to a JSON-lines file (called from the batch processor's thread)."""

    def __init__(self, path: Path) -> None:
        """Export to `path`, creating its folder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write one line per span."""
        lines = "".join(json.dumps(span_json(s), separators=(",", ":"), default=str) + "\n" for s in spans)
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def write_lines(self, lines: str) -> None:
        """Append already rendered lines (the recorder's fast path, which skips `ReadableSpan`)."""
        with self._lock:
            if not self._file.closed:
                self._file.write(lines)
                self._file.flush()

    def shutdown(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


def disabled(environ: Mapping[str, str]) -> bool:
    """True when `OTEL_SDK_DISABLED=true` (OpenTelemetry's own switch): no spans, no request logs."""
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def make_exporter(component: str, home: Path, environ: Mapping[str, str]) -> SpanExporter:
    """OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set in `environ`, else a JSON-lines file."""
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # reads the endpoint, headers and timeout from the OTEL_* variables
    return JsonLinesExporter(home / "traces" / f"{component}-{os.getpid()}.jsonl")


def read_spans(folder: Path) -> list[dict[str, Any]]:
    """Every span in the JSON-lines files of `folder` (for tests and `polycloud` tooling)."""
    spans: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                spans.append(json.loads(line))
    return spans
