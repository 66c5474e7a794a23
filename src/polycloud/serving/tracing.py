"""The replica's side of a trace: a server span continuing the gateway's `traceparent`, and a JSON
request log line carrying the trace and request ids (see `polycloud.telemetry`)."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from polycloud.telemetry.tracing import (
    new_trace_id,
    parse_traceparent,
    remote_context,
    trace_id_of,
    use_trace_id,
)


class ReplicaTracer:
    """Spans and request logs of one replica."""

    def __init__(self, tracer: Tracer, log: Any | None = None) -> None:
        """Trace with `tracer`; `log` (a structlog logger) gets a line per inference when given."""
        self._tracer = tracer
        self._log = log

    def start(self, headers: list[tuple[bytes, bytes]], path: str) -> tuple[Span, str]:
        """Open the server span of one inference; returns it and the request id."""
        parent_header = request_id = None
        for name, value in headers:
            if name == b"traceparent":
                parent_header = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
        parent = parse_traceparent(parent_header)
        if parent is None:
            use_trace_id(trace_id_of(request_id) or new_trace_id())
        span = self._tracer.start_span(
            "infer", context=remote_context(parent), kind=SpanKind.SERVER, attributes={"url.path": path}
        )
        if request_id is None:
            request_id = f"{span.get_span_context().trace_id:032x}"
        span.set_attribute("polycloud.request_id", request_id)
        return span, request_id

    def finish(self, span: Span, request_id: str, status: int, seconds: float) -> None:
        """Close the span and log the inference."""
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
        span.end()
        if self._log is not None:
            trace_id = f"{span.get_span_context().trace_id:032x}"
            self._log.info(
                "request", request_id=request_id, trace_id=trace_id, status=status, ms=round(seconds * 1e3, 3)
            )
