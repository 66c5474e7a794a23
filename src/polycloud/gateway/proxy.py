"""The request path: admit, choose a replica, forward, retry elsewhere on failure, answer.

One request, step by step:

1. one pass over the headers: `x-request-id` (a uuid4 hex is made when absent), the client region
   `x-polycloud-client-region` (else the gateway's own), the deadline `x-polycloud-timeout-ms` (else
   `default_timeout_s`), and the headers to forward;
2. unknown service → 404; `max_in_flight` requests already in flight → 429 with `Retry-After` (the
   gateway never queues); the body is read whole (bounded: 413), so that it can be sent again;
3. up to `max_attempts` attempts within the deadline, each on the replica `Selector` picks, excluding
   those that failed this request and preferring another cluster. A connection error, a timeout or a 5xx
   is a failure: it feeds the ejection policy and moves on. Any answer below 500 — 4xx included, which
   is the client's fault — goes back unchanged, with `x-request-id` and `x-polycloud-cluster`;
4. when every attempt failed: the last replica's 5xx as it was, else 504 if the deadline passed, else
   503; with no replica to try at all: 503 (or 429 when all are saturated) with the reason.

Nothing here does I/O besides the proxied call, and nothing blocks.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from polycloud.gateway.ejection import EjectionPolicy
from polycloud.gateway.forwarding import DROP_REQUEST_HEADERS, Failure, Forwarder, Reply
from polycloud.gateway.locality import Locator, Point
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.selecting import NoRoute, Selector
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.upstreams import Upstream, UpstreamRegistry
from polycloud.gateway.wire import Receive, Scope, Send, send_error, send_response

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499
"""Status recorded (never sent) when the client went away before its body was read."""


@dataclass(frozen=True, slots=True)
class BodyError:
    """The request body could not be read whole."""

    status: int
    message: str


async def read_body(receive: Receive, limit: int) -> bytes | BodyError:
    """The whole request body, or why not (413 past `limit` bytes, 499 when the client left)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return BodyError(CLIENT_CLOSED, "the client closed the connection")
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return BodyError(413, f"the request body is larger than {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(slots=True)
class Call:
    """One client request on its way through the attempts."""

    service: str
    method: str
    target: str
    """Path and query, forwarded as received."""
    headers: list[tuple[str, str]]
    """To forward, `x-request-id` included."""
    body: bytes
    client: Point | None
    deadline: float
    """`time.monotonic()` value after which no attempt starts."""
    id_header: tuple[bytes, bytes]


class Proxy:
    """Forwards OIP requests for every service; one instance per gateway, used on its event loop."""

    def __init__(
        self,
        settings: GatewaySettings,
        registry: UpstreamRegistry,
        selector: Selector,
        forwarder: Forwarder,
        ejection: EjectionPolicy,
        locator: Locator,
        metrics: GatewayMetrics,
    ) -> None:
        """Wire the request path's parts together (see `polycloud.gateway.app.create_app`)."""
        self._settings = settings
        self._registry = registry
        self._selector = selector
        self._forwarder = forwarder
        self._ejection = ejection
        self._locator = locator
        self._metrics = metrics
        self._home = locator.point(settings.region)
        self._retry_after = (b"retry-after", str(settings.retry_after_s).encode())
        self.in_flight = 0
        """Requests admitted and not answered yet."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, service: str, target: str) -> None:
        """Serve one request for `service`, whose path and query are `target` (forwarded as they are)."""
        start = time.perf_counter()
        settings = self._settings
        request_id = region = timeout_text = None
        forward: list[tuple[str, str]] = []
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            if name == "x-request-id":
                request_id = value
            elif name == "x-polycloud-client-region":
                region = value
            elif name == "x-polycloud-timeout-ms":
                timeout_text = value
            if name not in DROP_REQUEST_HEADERS:
                forward.append((name, value))
        request_id = request_id or uuid.uuid4().hex
        forward.append(("x-request-id", request_id))
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        status, cluster = 0, ""
        if self._registry.pool(service) is None:
            status = 404
            await send_error(send, status, f"unknown service {service!r}: no such model here", [id_header])
            service = ""  # never a metrics label from an unchecked URL
        elif (timeout_s := self._timeout(timeout_text)) is None:
            status = 400
            message = "x-polycloud-timeout-ms must be a positive number of milliseconds"
            await send_error(send, status, message, [id_header])
        elif self.in_flight >= settings.max_in_flight:
            status = 429
            message = f"the gateway is saturated ({settings.max_in_flight} requests in flight); retry later"
            await send_error(send, status, message, [id_header, self._retry_after])
        else:
            self.in_flight += 1
            try:
                body = await read_body(receive, settings.max_body_bytes)
                if isinstance(body, BodyError):
                    status = body.status
                    await send_error(send, status, body.message, [id_header])
                else:
                    client = self._home if region is None else self._locator.point(region)
                    deadline = time.monotonic() + timeout_s
                    call = Call(service, scope["method"], target, forward, body, client, deadline, id_header)
                    status, cluster = await self._attempts(send, call)
            finally:
                self.in_flight -= 1
        self._metrics.answered(service, cluster, status, time.perf_counter() - start)

    def _timeout(self, text: str | None) -> float | None:
        if text is None:
            return self._settings.default_timeout_s
        try:
            value = float(text) / 1000.0
        except ValueError:
            return None
        if not value > 0:  # also rejects NaN
            return None
        return min(value, self._settings.max_timeout_s)

    async def _attempts(self, send: Send, call: Call) -> tuple[int, str]:
        """Try replicas until one answers below 500; answer the client. Returns (status, cluster)."""
        settings = self._settings
        metrics = self._metrics
        tried: list[Upstream] = []
        last: Reply | Failure | None = None
        for attempt in range(settings.max_attempts):
            now = time.monotonic()
            remaining = call.deadline - now
            pool = self._registry.pool(call.service)
            if remaining <= 0 or pool is None:
                break
            choice = self._selector.select(pool, call.client, now, tried)
            if isinstance(choice, NoRoute):
                if last is None:
                    await send_error(send, choice.status, choice.reason, [call.id_header, self._retry_after])
                    return choice.status, ""
                break
            if attempt:
                metrics.retried(call.service)
            choice.outstanding += 1
            try:
                outcome = await self._forwarder.send(
                    choice,
                    call.method,
                    call.target,
                    call.headers,
                    call.body,
                    min(remaining, settings.attempt_timeout_s),
                )
            finally:
                choice.outstanding -= 1
            now = time.monotonic()
            if isinstance(outcome, Reply) and outcome.status < 500:
                self._ejection.succeeded(choice, now)
                choice.observe(outcome.elapsed_ms, settings.ewma_alpha)
                metrics.attempted(call.service, choice.cluster, "ok")
                await send_response(
                    send, outcome.status, outcome.headers, outcome.body, call.id_header, choice
                )
                return outcome.status, choice.cluster
            self._failed(choice, outcome, now)
            tried.append(choice)
            last = outcome
        return await self._exhausted(send, call, last, tried)

    def _failed(self, upstream: Upstream, outcome: Reply | Failure, now: float) -> None:
        kind: str = outcome.kind if isinstance(outcome, Failure) else "5xx"
        if kind == "connect" and upstream.healthy:
            upstream.healthy = False  # until the next health check passes
            log.info("replica %s (%s/%s) is unreachable", upstream.id, upstream.service, upstream.cluster)
        self._metrics.attempted(upstream.service, upstream.cluster, kind)
        if self._ejection.failed(upstream, now):
            self._metrics.ejected(upstream.service, upstream.cluster)
            log.warning(
                "ejected replica %s (%s/%s) until +%.1f s after repeated failures",
                upstream.id,
                upstream.service,
                upstream.cluster,
                upstream.ejected_until - now,
            )

    async def _exhausted(
        self, send: Send, call: Call, last: Reply | Failure | None, tried: list[Upstream]
    ) -> tuple[int, str]:
        """Answer after the last attempt failed (or none could start before the deadline)."""
        if isinstance(last, Reply):
            upstream = tried[-1]
            await send_response(send, last.status, last.headers, last.body, call.id_header, upstream)
            return last.status, upstream.cluster
        attempts = f"{len(tried)} attempt{'s' if len(tried) != 1 else ''}"
        why = f"; last: {last.message}" if last is not None else ""
        if time.monotonic() >= call.deadline:
            message = f"deadline passed after {attempts} on service {call.service!r}{why}"
            await send_error(send, 504, message, [call.id_header])
            return 504, ""
        message = f"every replica tried for service {call.service!r} failed ({attempts}{why})"
        await send_error(send, 503, message, [call.id_header, self._retry_after])
        return 503, ""
