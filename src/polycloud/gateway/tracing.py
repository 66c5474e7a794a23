"""Request tracing and request logs of the gateway (see `polycloud.telemetry.tracing`).

`GatewayTracer.start` picks the request's trace id (from a 32-hex-digit `x-request-id`, else from a
valid incoming `traceparent`, else a new one, which then is the request id too) and opens the server
span; `attempt` opens a client span per upstream attempt and returns the `traceparent` header that
carries it to the replica; `finish` closes the request span and queues one JSON log line. Spans are
exported in batches from a background thread; nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, set_span_in_context

from polycloud.gateway.upstreams import Upstream
from polycloud.telemetry.tracing import (
    new_trace_id,
    parse_traceparent,
    remote_context,
    trace_id_of,
    traceparent,
    use_trace_id,
)


class GatewayTracer:
    """Spans and request logs of one gateway."""

    def __init__(self, tracer: Tracer, log: Any | None = None) -> None:
        """Trace with `tracer`; `log` (a structlog logger) gets one line per request when given."""
        self._tracer = tracer
        self._log = log

    def start(
        self, request_id: str | None, parent_header: str | None, method: str, service: str
    ) -> tuple[Span, str]:
        """Open the request's span; returns it and the request id to use and send on."""
        trace_id = trace_id_of(request_id)
        parent = parse_traceparent(parent_header)
        if parent is not None and trace_id and parent.trace_id != trace_id:
            parent = None  # the request id names the trace; a foreign parent would split it
        if not trace_id:
            trace_id = parent.trace_id if parent is not None else new_trace_id()
        if request_id is None:
            request_id = f"{trace_id:032x}"
        use_trace_id(trace_id)
        span = self._tracer.start_span(
            f"{method} {service}",
            context=remote_context(parent),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "polycloud.service": service,
                "polycloud.request_id": request_id,
            },
        )
        return span, request_id

    def attempt(self, request: Span, upstream: Upstream) -> tuple[Span, tuple[str, str]]:
        """Open the span of one upstream attempt; returns it and the `traceparent` header to send."""
        span = self._tracer.start_span(
            "attempt",
            context=set_span_in_context(request),
            kind=SpanKind.CLIENT,
            attributes={
                "polycloud.cluster": upstream.cluster,
                "polycloud.replica": upstream.id,
                "polycloud.revision": upstream.revision,
                "polycloud.role": upstream.role,
            },
        )
        context = span.get_span_context()
        return span, ("traceparent", traceparent(context.trace_id, context.span_id))

    @staticmethod
    def attempted(span: Span, status: int | None, failure: str | None) -> None:
        """Close an attempt's span with its HTTP status or failure kind (both None: cancelled)."""
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        elif failure is not None:
            span.set_attribute("polycloud.failure", failure)
            span.set_status(StatusCode.ERROR)
        else:
            span.set_attribute("polycloud.cancelled", True)
        span.end()

    def finish(
        self, span: Span, request_id: str, service: str, cluster: str, status: int, seconds: float
    ) -> None:
        """Close the request's span and log the request."""
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("polycloud.cluster", cluster)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
        span.end()
        if self._log is not None:
            context = span.get_span_context()
            self._log.info(
                "request",
                request_id=request_id,
                trace_id=f"{context.trace_id:032x}",
                service=service,
                cluster=cluster,
                status=status,
                ms=round(seconds * 1000.0, 3),
            )
