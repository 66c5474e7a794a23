"""The request path: admit, choose a replica, forward, retry elsewhere on failure, answer.

One request, step by step:

1. one pass over the headers: `x-request-id` (a uuid4 hex is made when absent), the client region
   `x-polycloud-client-region` (else the gateway's own), the deadline `x-polycloud-timeout-ms` (else
   `default_timeout_s`), and the headers to forward;
2. unknown service → 404; `max_in_flight` requests already in flight → 429 with `Retry-After` (the
   gateway never queues); the body is read whole (bounded: 413), so that it can be sent again;
3. up to `max_attempts` attempts within the deadline, each on the replica `Selector` picks, excluding
   those that failed this request and preferring another cluster. An attempt still unanswered at its
   limit (`polycloud.gateway.hedging`: 2 × the service's p99, 250 ms to 5 s) is *overdue*: a copy goes
   to another replica and the first good answer wins, the other copy is cancelled. A connection error,
   a timeout or a 5xx is a failure: it feeds the ejection policy and moves on. Any answer below 500 —
   4xx included, which is the client's fault — goes back unchanged, with `x-request-id`,
   `x-polycloud-cluster` and, when other attempts came first, `x-polycloud-tried` (their clusters);
4. when every attempt failed: the last replica's 5xx as it was, else 504 if the deadline passed, else
   503; with no replica to try at all: 503 (or 429 when all are saturated) with the reason.

A copy that lost the race is a failure of its replica (a timeout) only when it had outlived its limit
while the winner answered within it: the replica was then silent, not merely slower than a sibling of a
slow service (a new 2 s model hedged at the floor loses no replica). One such timeout — or any timeout
of an attempt whose request another replica answered — takes the replica out for every request until an
active health check is answered (`Upstream.silent`), as a refused connection does: waiting for three
in a row would let a frozen replica hold a trickle of requests (the routing policy sends it less while
requests are stuck on it, so its strikes come slowly), and a replica that is only stalled answers its
next check, within a second. Timeouts also count for the ejection policy like other failures.

Nothing here does I/O besides the proxied call, and nothing blocks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
from polycloud.telemetry.tracing import usable_request_id

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499
"""Status recorded (never sent) when the client went away before its body was read."""
TRIED_HEADER = b"x-polycloud-tried"
"""Names the clusters of the attempts that did not give the answer (failed, or lost a hedge race)."""

WATCH_TICK_S = 0.02
"""How often the watchdog looks for attempts to hedge: a copy leaves up to this late."""
Loser = tuple[Upstream, Reply | Failure | None]
"""An attempt that did not give the answer, and its failure (None: it lost a race without failing)."""
NO_LOSERS: tuple[Loser, ...] = ()


@dataclass(frozen=True, slots=True)
class BodyError:
    """The request body could not be read whole."""

    status: int
    message: str


async def read_body(receive: Receive, limit: int, timeout_s: float) -> bytes | BodyError:
    """The whole request body, or why not: 413 past `limit` bytes, 408 when the rest of it does not come
    within `timeout_s`, 499 when the client left. Only a body that spans several messages pays for a timer."""
    chunks: list[bytes] = []
    size = 0
    deadline = 0.0
    while True:
        if not chunks:
            message = await receive()
        else:
            deadline = deadline or time.monotonic() + timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return BodyError(408, f"the request body did not arrive within {timeout_s:g} s")
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


def declared_too_large(text: str | None, limit: int) -> bool:
    """Whether a `content-length` header declares a body over `limit` (answered 413 before reading any)."""
    if text is None:
        return False
    try:
        return int(text) > limit
    except ValueError:
        return False  # the HTTP server refuses a malformed content-length itself


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
    revision: int | None = None
    """The revision of the service a flag chose (`polycloud.gateway.flagrouting`); None: any."""


class _Race:
    """One attempt and its hedged copy, as the watchdog and the copy's completion see them.

    The first attempt is awaited in the request's own task, not a task of its own, and no timer is set
    per request (a task, a wake-up and a uvloop timer more cost the request path about a fifth): the
    proxy's watchdog sends the copy once the attempt is due, and when the copy answers first, it
    cancels the request's task while that task waits on the first attempt; `Proxy._race` takes the
    cancellation back (`Task.uncancel`, as `asyncio.timeout` does).
    """

    __slots__ = (
        "call",
        "due",
        "early",
        "first",
        "hedge",
        "hedged_at",
        "pool",
        "racing",
        "second",
        "task",
        "tried",
        "won",
    )

    def __init__(
        self,
        pool: ServicePool,
        call: Call,
        first: Upstream,
        tried: list[Upstream],
        task: asyncio.Task[Any],
        due: float,
    ) -> None:
        self.pool = pool
        self.call = call
        self.first = first
        self.tried = tried
        self.task = task
        """The request's task, which awaits the first attempt."""
        self.due = due
        """`time.monotonic()` at which the copy leaves."""
        self.early = not first.silent
        """Whether the copy leaves as soon as `first` is found silent (not when it was chosen so)."""
        self.racing = True
        """While the task awaits the first attempt (only then may the copy's answer cancel it)."""
        self.second: Upstream | None = None
        self.hedge: asyncio.Task[Reply | Failure] | None = None
        self.hedged_at = 0.0
        self.won: Reply | None = None
        """The copy's good answer, when it came first."""

    def hedge_done(self, task: asyncio.Task[Reply | Failure]) -> None:
        """The copy finished: a good answer while the first attempt is still awaited wins the race."""
        if task.cancelled() or task.exception() is not None:
            return
        outcome = task.result()
        if isinstance(outcome, Reply) and outcome.status < 500 and self.racing:
            self.won, self.racing = outcome, False
            self.task.cancel()


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
        self._hedger = Hedger(settings)
        self._racing: set[_Race] = set()
        """Attempts that may still be hedged, for the watchdog."""
        self._watchdog: asyncio.TimerHandle | None = None
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

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        service: str,
        target: str,
        revision: int | None = None,
    ) -> None:
        """Serve one request for `service`, whose path and query are `target` (forwarded as they are);
        `revision`: the service's revision to prefer (a flag's choice)."""
        start = time.perf_counter()
        settings = self._settings
        request_id = region = timeout_text = parent = length = None
        forward: list[tuple[bytes, bytes]] = []  # bytes as received: nothing decoded but what is read
        for name, value in scope["headers"]:
            if name in DROP_REQUEST_HEADERS:
                if name == b"x-request-id":
                    request_id = usable_request_id(value.decode("latin-1"))
                elif name == b"x-polycloud-timeout-ms":
                    timeout_text = value.decode("latin-1")
                elif name == b"traceparent":
                    parent = value.decode("latin-1")
                elif name == b"content-length":
                    length = value.decode("latin-1")
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
        elif declared_too_large(length, settings.max_body_bytes):
            status = 413
            message = f"the request body is larger than {settings.max_body_bytes} bytes"
            await send_error(send, status, message, [id_header])
        elif self.in_flight >= settings.max_in_flight:
            status = 429
            message = f"the gateway is saturated ({settings.max_in_flight} requests in flight); retry later"
            await send_error(send, status, message, [id_header, self._retry_after])
        else:
            self.in_flight += 1
            try:
                body = await read_body(receive, settings.max_body_bytes, timeout_s)
                if isinstance(body, BodyError):
                    status = body.status
                    await send_error(send, status, body.message, [id_header])
                else:
                    client = self._home if region is None else self._locator.point(region)
                    deadline = time.monotonic() + timeout_s
                    method = scope["method"]
                    call = Call(service, method, target, forward, body, client, deadline, id_header, span)
                    call.revision = revision
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
        overtaken: list[Upstream] | None = None  # made on the rare path only
        last: Reply | Failure | None = None
        for attempt in range(settings.max_attempts):
            now = time.monotonic()
            remaining = call.deadline - now
            pool = self._registry.pool(call.service)
            if remaining <= 0 or pool is None:
                break
            choice = self.select_first(pool, call, now, tried)
            if isinstance(choice, NoRoute):
                if last is None:
                    await send_error(send, choice.status, choice.reason, [call.id_header, self._retry_after])
                    return choice.status, ""
                break
            if attempt:
                metrics.retried(call.service)
            winner, outcome, losers = await self._race(pool.own or pool, call, choice, tried)
            now = time.monotonic()
            answered = isinstance(outcome, Reply) and outcome.status < 500
            for upstream, failure in losers:
                if failure is None:
                    metrics.attempted(call.service, upstream.cluster, "overtaken")
                    overtaken = [upstream] if overtaken is None else [*overtaken, upstream]
                    continue
                if answered and isinstance(failure, Failure) and failure.kind == "timeout":
                    self._silenced(upstream, failure)
                self.failed(upstream, failure, now)
                tried.append(upstream)
                last = failure
            if isinstance(outcome, Reply) and answered:
                self._ejection.succeeded(winner, now)
                winner.observe(outcome.elapsed_ms, settings.ewma_alpha)
                metrics.attempted(call.service, winner.cluster, "ok")
                metrics.moved(call.service, winner.cluster, len(call.body), len(outcome.body))
                headers = outcome.headers
                if tried or overtaken:
                    headers.append(_tried(tried, overtaken))
                await send_response(send, outcome.status, headers, outcome.body, call.id_header, winner)
                return outcome.status, winner.cluster
            self.failed(winner, outcome, now)
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
        self, pool: ServicePool, call: Call, first: Upstream, tried: list[Upstream]
    ) -> tuple[Upstream, Reply | Failure, Sequence[Loser]]:
        """One attempt on `first`, with a copy on another replica once it is overdue (see the module).

        The hedge leaves at the attempt's limit, or earlier at the service's `hedging` percentile. The
        first attempt runs on meanwhile, up to `attempt_timeout_s` and the deadline: it is never cut at
        its limit, so a slow model still answers. Returns the upstream whose outcome counts (the first
        good answer, else the last failure), that outcome, and the attempts that lost.
        """
        settings = self._settings
        started = time.monotonic()
        hard = min(call.deadline - started, settings.attempt_timeout_s)
        limit = self._hedger.limit_s(call.service)
        delay = limit if settings.hedge_overdue else math.inf
        if pool.hedge is not None:
            usual = self._hedger.delay_s(call.service, pool.hedge)
            if usual is not None and usual < delay:
                delay = usual
        if delay >= hard or len(pool.upstreams) < 2 or (task := asyncio.current_task()) is None:
            return first, await self._forward(first, call, hard), NO_LOSERS  # no copy could go in time
        race = _Race(pool, call, first, tried, task, started + delay)
        racing = self._racing
        racing.add(race)
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(WATCH_TICK_S, self._watch)
        try:
            outcome = await self._forward(first, call, hard)
        except asyncio.CancelledError:
            if race.won is None or race.second is None or race.task.uncancel():
                if race.hedge is not None:
                    race.hedge.cancel()
                raise  # the request itself was cancelled (the client left, the server stops)
            return race.second, race.won, ((first, _lost(started, limit, race.won)),)
        finally:
            race.racing = False
            racing.discard(race)
        hedge, second = race.hedge, race.second
        if hedge is None or second is None:
            return first, outcome, NO_LOSERS
        if isinstance(outcome, Reply) and outcome.status < 500:
            hedge.cancel()
            return first, outcome, ((second, _lost(race.hedged_at, limit, outcome)),)
        return second, await hedge, ((first, outcome),)  # the first failed: the copy may still answer

    def _watch(self) -> None:
        """The watchdog, every `WATCH_TICK_S` while attempts are in flight: send the copy of each attempt
        that is due, or whose replica was found silent meanwhile (its ejection is shared by every request
        of the replica, those already waiting on it included)."""
        now = time.monotonic()
        for race in list(self._racing):
            if race.hedge is None and (race.due <= now or (race.early and race.first.silent)):
                self._hedge(race)
        self._watchdog = (
            asyncio.get_running_loop().call_later(WATCH_TICK_S, self._watch) if self._racing else None
        )

    def _hedge(self, race: _Race) -> None:
        """Send a copy of the attempt to another replica, if one can take it."""
        if not race.racing or race.hedge is not None:
            return
        call, now = race.call, time.monotonic()
        remaining = call.deadline - now
        if remaining <= 0:
            return
        second = self._selector.select(race.pool, call.client, now, [*race.tried, race.first])
        if not isinstance(second, Upstream):
            return
        self._metrics.hedged(call.service)
        race.second, race.hedged_at = second, now
        timeout_s = min(remaining, self._settings.attempt_timeout_s)
        race.hedge = hedge = asyncio.get_running_loop().create_task(self._forward(second, call, timeout_s))
        hedge.add_done_callback(race.hedge_done)

    def select_first(
        self, pool: ServicePool, call: Call, now: float, tried: list[Upstream], affinity: bytes | None = None
    ) -> Upstream | NoRoute:
        """During a canary the first attempt draws its revision by weight (the other revision serves
        when the drawn one has no replica to offer); retries may go to any replica. A revision a flag
        chose (`call.revision`) is tried first, then the service's own replicas, then any
        (`ServicePool.preferred`). `affinity`: the prompt prefix of a service with prefix affinity
        (`polycloud.gateway.selecting.affine`)."""
        pools = pool.preferred(call.revision)
        for candidate in pools[:-1]:
            choice = self._pick(candidate, call, now, tried, affinity)
            if not isinstance(choice, NoRoute):
                return choice
        return self._pick(pools[-1], call, now, tried, affinity)

    def _pick(
        self, pool: ServicePool, call: Call, now: float, tried: list[Upstream], affinity: bytes | None
    ) -> Upstream | NoRoute:
        select = self._selector.select
        if tried or pool.tracks is None:
            return select(pool, call.client, now, tried, affinity)
        choice = select(pool.track(self._rng.random()), call.client, now, tried, affinity)
        if isinstance(choice, NoRoute):
            return select(pool, call.client, now, tried, affinity)
        return choice

    @staticmethod
    def _silenced(upstream: Upstream, failure: Failure) -> None:
        """`upstream` timed out on an attempt that another replica answered in time: out until a health
        check is answered, shared by every request: those waiting on it are hedged at once (a stalled
        replica is back at its next check)."""
        if upstream.silence():
            log.warning(
                "replica %s (%s/%s) stopped answering: %s; out until a health check passes",
                upstream.id,
                upstream.service,
                upstream.cluster,
                failure.message,
            )

    def succeeded(self, upstream: Upstream, now: float) -> None:
        """An attempt on `upstream` succeeded (the ejection policy forgives its earlier failures)."""
        self._ejection.succeeded(upstream, now)

    def failed(self, upstream: Upstream, outcome: Reply | Failure, now: float) -> None:
        kind: str = outcome.kind if isinstance(outcome, Failure) else "5xx"
        if kind == "connect" and upstream.healthy:
            upstream.healthy = upstream.silent = False  # until the next health check passes
            log.info("replica %s (%s/%s) is unreachable", upstream.id, upstream.service, upstream.cluster)
        self._metrics.attempted(upstream.service, upstream.cluster, kind)
        if self._ejection.failed(upstream, now):
            self._metrics.ejected(upstream.service, upstream.cluster)
            why = "repeated failures"
            if kind == "timeout" and upstream.silence():  # out until a health check is answered
                why = "attempts that got no answer in time; out until a health check passes"
            log.warning(
                "ejected replica %s (%s/%s) until +%.1f s after %s",
                upstream.id,
                upstream.service,
                upstream.cluster,
                upstream.ejected_until - now,
                why,
            )

    async def _exhausted(
        self, send: Send, call: Call, last: Reply | Failure | None, tried: list[Upstream]
    ) -> tuple[int, str]:
        """Answer after the last attempt failed (or none could start before the deadline)."""
        if isinstance(last, Reply):
            upstream = tried[-1]
            headers = last.headers
            if len(tried) > 1:
                headers.append(_tried(tried[:-1], None))
            await send_response(send, last.status, headers, last.body, call.id_header, upstream)
            return last.status, upstream.cluster
        attempts = f"{len(tried)} attempt{'s' if len(tried) != 1 else ''}"
        why = f"; last: {last.message}" if last is not None else ""
        extra = [_tried(tried, None)] if tried else []
        if time.monotonic() >= call.deadline:
            message = f"deadline passed after {attempts} on service {call.service!r}{why}"
            await send_error(send, 504, message, [call.id_header, *extra])
            return 504, ""
        message = f"every replica tried for service {call.service!r} failed ({attempts}{why})"
        await send_error(send, 503, message, [call.id_header, self._retry_after, *extra])
        return 503, ""


def _lost(started: float, limit: float, winner: Reply) -> Failure | None:
    """How a copy that lost the race counts: a timeout of its replica when it had outlived its limit
    while the winner answered within it; else None (it was only slower than a sibling)."""
    waited = time.monotonic() - started
    if waited > limit and winner.elapsed_ms <= limit * 1000.0:
        answered = f"another replica answered in {winner.elapsed_ms:.0f} ms"
        return Failure("timeout", f"no answer within its limit of {limit:.3g} s while {answered}")
    return None


def _tried(failed: list[Upstream], overtaken: list[Upstream] | None) -> tuple[bytes, bytes]:
    """`x-polycloud-tried`: the clusters of the attempts that did not give the answer, once each."""
    clusters = dict.fromkeys(u.cluster for u in (*failed, *(overtaken or ())))
    return TRIED_HEADER, ",".join(clusters).encode()
