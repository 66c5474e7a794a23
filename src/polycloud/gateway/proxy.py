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

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from polycloud.gateway.canary import RevisionCounter
from polycloud.gateway.ejection import EjectionPolicy
from polycloud.gateway.forwarding import DROP_REQUEST_HEADERS, Failure, Forwarder, Reply
from polycloud.gateway.hedging import Hedger
from polycloud.gateway.keyload import KEY_ID_SCOPE, KeyWindow
from polycloud.gateway.locality import Locator, Point
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.selecting import NoRoute, Selector
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.tracing import GatewayTracer
from polycloud.gateway.upstreams import ServicePool, Upstream, UpstreamRegistry
from polycloud.gateway.wire import Receive, Scope, Send, send_error, send_response
from polycloud.telemetry.recording import SpanData

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
    headers: list[tuple[bytes, bytes]]
    """To forward, `x-request-id` included."""
    body: bytes
    client: Point | None
    deadline: float
    """`time.monotonic()` value after which no attempt starts."""
    id_header: tuple[bytes, bytes]
    span: SpanData | None = None
    """The request's trace span, when the gateway traces."""


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
        revisions: RevisionCounter | None = None,
        tracer: GatewayTracer | None = None,
    ) -> None:
        """Wire the request path's parts together (see `polycloud.gateway.app.create_app`)."""
        self.tracer = tracer
        """Spans and request logs; None: neither."""
        self.revisions = revisions or RevisionCounter()
        """Attempts per (service, revision), for judging canaries."""
        self.key_window: KeyWindow | None = None
        """Answers per inference key (`polycloud.gateway.keyload`); None: not counted."""
        self._rng = selector.policy.rng
        self._hedger = Hedger()
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
        request_id = region = timeout_text = parent = None
        forward: list[tuple[bytes, bytes]] = []  # bytes as received: nothing decoded but what is read
        for name, value in scope["headers"]:
            if name in DROP_REQUEST_HEADERS:
                if name == b"x-request-id":
                    request_id = value.decode("latin-1")
                elif name == b"x-polycloud-timeout-ms":
                    timeout_text = value.decode("latin-1")
                elif name == b"traceparent":
                    parent = value.decode("latin-1")
                continue
            if name == b"x-polycloud-client-region":
                region = value.decode("latin-1")
            forward.append((name, value))
        tracer, span = self.tracer, None
        if tracer is not None:
            span, request_id = tracer.start(request_id, parent, scope["method"], service)
        else:
            request_id = request_id or uuid.uuid4().hex
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        forward.append(id_header)

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
                    call = Call(
                        service, scope["method"], target, forward, body, client, deadline, id_header, span
                    )
                    status, cluster = await self._attempts(send, call)
            finally:
                self.in_flight -= 1
        elapsed = time.perf_counter() - start
        self._metrics.answered(service, cluster, status, elapsed)
        key_id = scope.get(KEY_ID_SCOPE)
        if key_id is not None and service and self.key_window is not None:
            self.key_window.answered(key_id, service, status, elapsed)
        if span is not None and tracer is not None:
            tracer.finish(span, request_id, service, cluster, status, elapsed)

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
            choice = self._select(pool, call, now, tried)
            if isinstance(choice, NoRoute):
                if last is None:
                    await send_error(send, choice.status, choice.reason, [call.id_header, self._retry_after])
                    return choice.status, ""
                break
            if attempt:
                metrics.retried(call.service)
            timeout_s = min(remaining, settings.attempt_timeout_s)
            winner, outcome, losers = await self._race(pool, call, choice, timeout_s, tried)
            now = time.monotonic()
            for upstream, failure in losers:
                self._failed(upstream, failure, now)
                tried.append(upstream)
                last = failure
            if isinstance(outcome, Reply) and outcome.status < 500:
                self._ejection.succeeded(winner, now)
                winner.observe(outcome.elapsed_ms, settings.ewma_alpha)
                metrics.attempted(call.service, winner.cluster, "ok")
                metrics.moved(call.service, winner.cluster, len(call.body), len(outcome.body))
                await send_response(
                    send, outcome.status, outcome.headers, outcome.body, call.id_header, winner
                )
                return outcome.status, winner.cluster
            self._failed(winner, outcome, now)
            tried.append(winner)
            last = outcome
        return await self._exhausted(send, call, last, tried)

    async def _forward(self, upstream: Upstream, call: Call, timeout_s: float) -> Reply | Failure:
        """One attempt on `upstream`, counted against its revision (a cancelled one is not counted)."""
        headers, attempt, tracer = call.headers, None, self.tracer
        if call.span is not None and tracer is not None:
            attempt, header = tracer.attempt(call.span, upstream)
            headers = [*headers, header]
        upstream.outstanding += 1
        sent = time.perf_counter()
        outcome: Reply | Failure | None = None
        try:
            outcome = await self._forwarder.send(
                upstream, call.method, call.target, headers, call.body, timeout_s
            )
        finally:
            upstream.outstanding -= 1
            if attempt is not None and tracer is not None:
                tracer.attempted(
                    attempt,
                    outcome.status if isinstance(outcome, Reply) else None,
                    outcome.kind if isinstance(outcome, Failure) else None,
                )
        elapsed = time.perf_counter() - sent
        ok = isinstance(outcome, Reply) and outcome.status < 500
        self.revisions.attempted(upstream.service, upstream.revision, ok, elapsed * 1e3)
        if ok:
            self._hedger.observe(upstream.service, elapsed)
        return outcome

    async def _race(
        self, pool: ServicePool, call: Call, first: Upstream, timeout_s: float, tried: list[Upstream]
    ) -> tuple[Upstream, Reply | Failure, list[tuple[Upstream, Reply | Failure]]]:
        """One attempt, hedged on a second replica when the service asks for it and the first is slow.

        Returns the upstream whose outcome counts (the first good answer, else the last failure), that
        outcome, and the other failures seen.
        """
        delay = self._hedger.delay_s(call.service, pool.hedge) if pool.hedge is not None else None
        if delay is None or delay >= timeout_s:
            return first, await self._forward(first, call, timeout_s), []
        primary = asyncio.ensure_future(self._forward(first, call, timeout_s))
        done, _ = await asyncio.wait({primary}, timeout=delay)
        second = None if done else self._selector.select(pool, call.client, time.monotonic(), [*tried, first])
        if not isinstance(second, Upstream):
            return first, await primary, []
        self._metrics.hedged(call.service)
        racing = {
            primary: first,
            asyncio.ensure_future(self._forward(second, call, timeout_s - delay)): second,
        }
        failed: list[tuple[Upstream, Reply | Failure]] = []
        try:
            while racing:
                finished, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    upstream, outcome = racing.pop(task), task.result()
                    if isinstance(outcome, Reply) and outcome.status < 500:
                        return upstream, outcome, failed
                    failed.append((upstream, outcome))
        finally:
            for task in racing:
                task.cancel()  # the slower copy (or every copy, when the client went away)
        upstream, outcome = failed.pop()
        return upstream, outcome, failed

    def _select(self, pool: ServicePool, call: Call, now: float, tried: list[Upstream]) -> Upstream | NoRoute:
        """During a canary the first attempt draws its revision by weight (the other revision serves
        when the drawn one has no replica to offer); retries may go to any replica."""
        if tried or pool.tracks is None:
            return self._selector.select(pool, call.client, now, tried)
        choice = self._selector.select(pool.track(self._rng.random()), call.client, now, tried)
        if isinstance(choice, NoRoute):
            return self._selector.select(pool, call.client, now, tried)
        return choice

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
