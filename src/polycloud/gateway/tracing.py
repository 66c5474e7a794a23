"""Request tracing and request logs of the gateway (see `polycloud.telemetry`).

`GatewayTracer.start` picks the request's trace id (from a 32-hex-digit `x-request-id`, else from a
valid incoming `traceparent`, else a new one, which then is the request id too) and opens the server
span; `attempt` opens a client span per upstream attempt and returns the `traceparent` header that
carries it to the replica; `finish` closes the request span and queues one JSON log line. Spans are
plain records here, exported in batches by the recorder's thread; nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind

from polycloud.gateway.upstreams import Upstream
from polycloud.telemetry.recording import SpanData, SpanRecorder
from polycloud.telemetry.tracing import new_trace_id, parse_traceparent, trace_id_of

SERVER, CLIENT = SpanKind.SERVER, SpanKind.CLIENT
"""Looked up once: on Python 3.11 every attribute read on an Enum class goes through a slow hook."""


class GatewayTracer:
    """Spans and request logs of one gateway."""

    def __init__(self, recorder: SpanRecorder, log: Any | None = None, log_sample: float = 1.0) -> None:
        """Record spans with `recorder`; `log` (a structlog logger), when given, gets a line for every
        answer of 400 or above and for the `log_sample` share of the others (chosen by trace id, so a
        logged request is one whose trace was kept too). A line per request costs about a tenth of the
        gateway's throughput on this machine (docs/benchmarks.md), hence the sample."""
        self.recorder = recorder
        self._log = log
        self._log_below = round(max(0.0, min(1.0, log_sample)) * 10_000)

    def start(
        self, request_id: str | None, parent_header: str | None, method: str, service: str
    ) -> tuple[SpanData, str]:
        """Open the request's span; returns it and the request id to use and send on."""
        trace_id = trace_id_of(request_id) if request_id is not None else 0
        parent = parse_traceparent(parent_header) if parent_header is not None else None
        if parent is not None and trace_id and parent.trace_id != trace_id:
            parent = None  # the request id names the trace; a foreign parent would split it
        if not trace_id:
            trace_id = parent.trace_id if parent is not None else new_trace_id()
        if request_id is None:
            request_id = f"{trace_id:032x}"
        attributes: dict[str, str | bool | int | float] = {
            "http.request.method": method,
            "polycloud.service": service,
            "polycloud.request_id": request_id,
        }
        parent_id = parent.span_id if parent is not None else 0
        span = self.recorder.start(f"{method} {service}", SERVER, trace_id, parent_id, True, attributes)
        return span, request_id

    def attempt(self, request: SpanData, upstream: Upstream) -> tuple[SpanData, tuple[bytes, bytes]]:
        """Open the span of one upstream attempt; returns it and the `traceparent` header to send."""
        attributes: dict[str, str | bool | int | float] = {
            "polycloud.cluster": upstream.cluster,
            "polycloud.replica": upstream.id,
            "polycloud.revision": upstream.revision,
            "polycloud.role": upstream.role,
        }
        span = self.recorder.start("attempt", CLIENT, request.trace_id, request.span_id, False, attributes)
        return span, (b"traceparent", b"00-%032x-%016x-01" % (span.trace_id, span.span_id))  # W3C, sampled

    def attempted(self, span: SpanData, status: int | None, failure: str | None) -> None:
        """Close an attempt's span with its HTTP status or failure kind (both None: cancelled)."""
        if status is not None:
            span.attributes["http.response.status_code"] = status
        elif failure is not None:
            span.attributes["polycloud.failure"] = failure
        else:
            span.attributes["polycloud.cancelled"] = True
        self.recorder.end(span, error=failure is not None or (status is not None and status >= 500))

    def finish(
        self, span: SpanData, request_id: str, service: str, cluster: str, status: int, seconds: float
    ) -> None:
        """Close the request's span and log the request."""
        span.attributes["http.response.status_code"] = status
        span.attributes["polycloud.cluster"] = cluster
        self.recorder.end(span, error=status >= 500)
        if self._log is not None and (status >= 400 or span.trace_id % 10_000 < self._log_below):
            self._log.info(
                "request",
                request_id=request_id,
                trace_id=f"{span.trace_id:032x}",
                service=service,
                cluster=cluster,
                status=status,
                ms=round(seconds * 1000.0, 3),
            )
