"""The replica's side of a trace: a server span continuing the gateway's `traceparent`, and a JSON
request log line carrying the trace and request ids (see `polycloud.telemetry`)."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind

from polycloud.telemetry.recording import SpanData, SpanRecorder
from polycloud.telemetry.tracing import new_trace_id, parse_traceparent, trace_id_of, usable_request_id


class ReplicaTracer:
    """Spans and request logs of one replica."""

    def __init__(self, recorder: SpanRecorder, log: Any | None = None) -> None:
        """Record spans with `recorder`; `log` (a structlog logger) gets a line per inference when given."""
        self.recorder = recorder
        self._log = log

    def start(self, headers: list[tuple[bytes, bytes]], path: str) -> tuple[SpanData, str]:
        """Open the server span of one inference; returns it and the request id."""
        parent_header = request_id = None
        for name, value in headers:
            if name == b"traceparent":
                parent_header = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = usable_request_id(value.decode("latin-1"))
        parent = parse_traceparent(parent_header)
        if parent is not None:
            trace_id, parent_id = parent.trace_id, parent.span_id
        else:
            trace_id, parent_id = trace_id_of(request_id) or new_trace_id(), 0
        request_id = request_id or f"{trace_id:032x}"
        attributes: dict[str, str | bool | int | float] = {
            "url.path": path,
            "polycloud.request_id": request_id,
        }
        return self.recorder.start(
            "infer", SpanKind.SERVER, trace_id, parent_id, True, attributes
        ), request_id

    def finish(self, span: SpanData, request_id: str, status: int, seconds: float) -> None:
        """Close the span and log the inference."""
        span.attributes["http.response.status_code"] = status
        self.recorder.end(span, error=status >= 500)
        if self._log is not None:
            trace_id = f"{span.trace_id:032x}"
            self._log.info(
                "request", request_id=request_id, trace_id=trace_id, status=status, ms=round(seconds * 1e3, 3)
            )
