"""The gateway's OpenAI API: `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and
`/v1/models`, for services whose replicas speak `protocol: openai`.

A request is routed by its body's `model` (the Service's name) with the same locality, health,
ejection, canary and key rules as OIP requests, and its answer is relayed part by part: a streamed
answer (server-sent events) reaches the client as the replica wrote it, with nothing buffered. Retries
and failover happen only before the first byte goes to the client — a connection error, a timeout
waiting for the answer's head, or a 5xx head moves the request to another replica; once an answer has
begun, a replica that fails mid-way ends the stream with an error event the `openai` SDK raises as an
`APIError` (`{"error": {"message", "type", "code"}}`), and the replica counts as failed for the next
requests. Errors the gateway answers itself have OpenAI's shape: 400 for a malformed body, 404 for an
unknown model, the key's 401/429, 503 when no replica can take the request.

Replicas are chosen by the gateway's routing policy over their outstanding requests (which, for LLM
streams, count until the stream ends: least outstanding requests); with the service's `prefixAffinity`,
requests that share a prompt prefix then prefer one replica of the chosen cluster, for its KV cache
(`polycloud.gateway.selecting.affine`). Hedging is off for LLM requests: a copy would double a GPU's
work. Usage, time to first token and inter-token time are metered
(`polycloud.gateway.tokens`) per service, cluster and revision.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from polycloud.gateway.canary import RevisionCounter
from polycloud.gateway.forwarding import DROP_REQUEST_HEADERS, Failure, FailureKind, Forwarder
from polycloud.gateway.keyload import KEY_ID_SCOPE
from polycloud.gateway.keys import KeyGuard
from polycloud.gateway.locality import Locator, Point
from polycloud.gateway.metrics import GatewayMetrics
from polycloud.gateway.proxy import CLIENT_CLOSED, TRIED_HEADER, BodyError, Call, Proxy, read_body
from polycloud.gateway.selecting import NoRoute
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.tokens import TokenMeter
from polycloud.gateway.upstreams import Upstream, UpstreamRegistry
from polycloud.gateway.wire import Receive, Scope, Send
from polycloud.proxying.connections import Broken, Streamed
from polycloud.telemetry.tracing import usable_request_id

OPENAI = "openai"
INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
JSON_TYPE = (b"content-type", b"application/json")
IDLE_TIMEOUT_S = 300.0
"""How long a relayed answer may pause between two parts before the stream is cut as failed."""
FROZEN_CHECK_S = 1.0
"""How often a relayed answer that pauses looks at its replica's health."""
FROZEN_AFTER_S = 5.0
"""A relayed answer that has paused this long is cut as failed if its replica has meanwhile stopped
answering health checks in time (`Upstream.healthy`: a frozen or partitioned replica), instead of
holding the client for IDLE_TIMEOUT_S; one that is merely slow between tokens (a CPU-bound llama.cpp on
a loaded machine can miss a health check and pause a second) goes on."""
MAX_ERROR_BODY = 65536
PREFIX_CHARS = 256
"""Characters of a prompt's start that prefix affinity hashes: enough to cover a system prompt's
opening, so conversations that share one meet the same replica's KV cache."""


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> bytes:
    """An error in OpenAI's shape."""
    error = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": error}, separators=(",", ":")).encode()


async def send_openai_error(
    send: Send, status: int, message: str, code: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with an OpenAI-shaped error of the gateway's own."""
    kind = "invalid_request_error" if status < 500 else "service_unavailable"
    if status in (401, 403):
        kind = "authentication_error"
    elif status == 429:
        kind = "rate_limit_exceeded"
    body = error_body(message, kind, code)
    head = [JSON_TYPE, (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class LlmFront:
    """Serves `/v1/...` for the gateway; one per gateway, used on its event loop."""

    def __init__(
        self,
        settings: GatewaySettings,
        registry: UpstreamRegistry,
        proxy: Proxy,
        forwarder: Forwarder,
        locator: Locator,
        metrics: GatewayMetrics,
        revisions: RevisionCounter,
    ) -> None:
        """Share the gateway's parts (see `polycloud.gateway.app.GatewayApp`)."""
        self._settings = settings
        self._registry = registry
        self._proxy = proxy
        self._forwarder = forwarder
        self._locator = locator
        self._metrics = metrics
        self._revisions = revisions
        self._home = locator.point(settings.region)
        self.keys: KeyGuard | None = None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one `/v1/...` request."""
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/v1/models":
            if method != "GET":
                await send_openai_error(
                    send, 405, f"{path} takes GET", "method_not_allowed", [(b"allow", b"GET")]
                )
            else:
                await self._models(scope, send)
            return
        if path not in INFERENCE_PATHS:
            await send_openai_error(send, 404, f"no such path {path!r}", "not_found")
            return
        if method != "POST":
            await send_openai_error(
                send, 405, f"{path} takes POST", "method_not_allowed", [(b"allow", b"POST")]
            )
            return
        await self._inference(scope, receive, send)

    async def _models(self, scope: Scope, send: Send) -> None:
        keys, headers = self.keys, scope["headers"]
        cards = [
            {"id": name, "object": "model", "created": 0, "owned_by": "polycloud"}
            for name in sorted(self._registry.services())
            if (pool := self._registry.pool(name)) is not None
            and pool.protocol == OPENAI
            and (keys is None or keys.may_use(name, headers))
        ]
        body = json.dumps({"object": "list", "data": cards}, separators=(",", ":")).encode()
        head = [JSON_TYPE, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def _inference(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        settings = self._settings
        body = await read_body(receive, settings.max_body_bytes, settings.default_timeout_s)
        if isinstance(body, BodyError):
            if body.status != CLIENT_CLOSED:
                await send_openai_error(send, body.status, body.message, "invalid_request")
            return
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            await send_openai_error(send, 400, "the request body is not valid JSON", "invalid_json")
            return
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, str) or not model:
            await send_openai_error(
                send, 400, "'model' is required: the name of a service", "invalid_request"
            )
            return
        pool = self._registry.pool(model)
        if pool is None or pool.protocol != OPENAI:
            await send_openai_error(send, 404, f"The model {model!r} does not exist", "model_not_found")
            return
        if self.keys is not None and (denial := self.keys.guard(model, scope)) is not None:
            await send_openai_error(
                send,
                denial.status,
                denial.message,
                "invalid_api_key" if denial.status == 401 else "rate_limited",
                denial.headers,
            )
            return
        proxy = self._proxy
        if proxy.in_flight >= settings.max_in_flight:
            retry = (b"retry-after", str(settings.retry_after_s).encode())
            message = f"the gateway is saturated ({settings.max_in_flight} requests in flight); retry later"
            await send_openai_error(send, 429, message, "saturated", [retry])
            return
        streaming = data.get("stream") is True
        strip = False
        if streaming and not (
            isinstance(data.get("stream_options"), dict) and data["stream_options"].get("include_usage")
        ):
            data["stream_options"] = {**(data.get("stream_options") or {}), "include_usage": True}
            body, strip = json.dumps(data, separators=(",", ":")).encode(), True
        call = self._call(scope, model, body)
        meter = TokenMeter(started, streaming, strip)
        affinity = prompt_prefix(data) if pool.prefix_affinity else None
        proxy.in_flight += 1
        try:
            status, cluster = await self._attempts(receive, send, call, meter, affinity)
        finally:
            proxy.in_flight -= 1
        elapsed = responsive_s(meter)
        self._metrics.answered(model, cluster, status, elapsed)
        key_id = scope.get(KEY_ID_SCOPE)
        if key_id is not None and proxy.key_window is not None:
            proxy.key_window.answered(key_id, model, status, elapsed)
        if key_id is not None and self.keys is not None and meter.metered is not None:
            self.keys.spend_tokens(key_id, model, meter.metered.total)
        tracer = proxy.tracer
        if call.span is not None and tracer is not None:
            tracer.finish(call.span, call.id_header[1].decode("latin-1"), model, cluster, status, elapsed)

    def _call(self, scope: Scope, service: str, body: bytes) -> Call:
        request_id = region = parent = None
        forward: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            if name in DROP_REQUEST_HEADERS:
                if name == b"x-request-id":
                    request_id = usable_request_id(value.decode("latin-1"))
                elif name == b"traceparent":
                    parent = value.decode("latin-1")
                continue
            if name == b"x-polycloud-client-region":
                region = value.decode("latin-1")
            forward.append((name, value))
        tracer, span = self._proxy.tracer, None
        if tracer is not None:
            span, request_id = tracer.start(request_id, parent, "POST", service)
        id_header = (b"x-request-id", (request_id or uuid.uuid4().hex).encode("latin-1"))
        forward.append(id_header)
        client: Point | None = self._home if region is None else self._locator.point(region)
        deadline = time.monotonic() + self._settings.default_timeout_s
        return Call(service, "POST", scope["path"], forward, body, client, deadline, id_header, span)

    async def _attempts(
        self, receive: Receive, send: Send, call: Call, meter: TokenMeter, affinity: bytes | None
    ) -> tuple[int, str]:
        """Try replicas until one answers with a head below 500, then relay it. Returns (status, cluster)."""
        settings, proxy = self._settings, self._proxy
        tried: list[Upstream] = []
        last: tuple[Streamed, bytes] | Failure | None = None
        for attempt in range(settings.max_attempts):
            now = time.monotonic()
            pool = self._registry.pool(call.service)
            if call.deadline <= now or pool is None:
                break
            choice = proxy.select_first(pool, call, now, tried, affinity)
            if isinstance(choice, NoRoute):
                if last is None:
                    retry = (b"retry-after", str(settings.retry_after_s).encode())
                    await send_openai_error(
                        send, choice.status, choice.reason, "no_replica", [call.id_header, retry]
                    )
                    return choice.status, ""
                break
            if attempt:
                self._metrics.retried(call.service)
            upstream = choice
            upstream.outstanding += 1
            try:
                timeout_s = min(call.deadline - now, settings.attempt_timeout_s)
                headers, traced, tracer = call.headers, None, proxy.tracer
                if call.span is not None and tracer is not None:
                    traced, header = tracer.attempt(call.span, upstream)
                    headers = [*headers, header]
                outcome = await self._forwarder.open_stream(
                    upstream, "POST", call.target, headers, call.body, timeout_s
                )
                if traced is not None and tracer is not None:
                    failed = outcome.kind if isinstance(outcome, Failure) else None
                    tracer.attempted(traced, None if isinstance(outcome, Failure) else outcome.status, failed)
                if isinstance(outcome, Failure):
                    proxy.failed(upstream, outcome, time.monotonic())
                    self._revisions.attempted(call.service, upstream.revision, False, 0.0)
                    tried.append(upstream)
                    last = outcome
                    continue
                if outcome.status >= 500:
                    error = await _drain(outcome)
                    proxy.failed(upstream, Failure("broken", f"answered {outcome.status}"), time.monotonic())
                    self._revisions.attempted(call.service, upstream.revision, False, 0.0)
                    tried.append(upstream)
                    last = (outcome, error)
                    continue
                return await self._relay(receive, send, call, upstream, outcome, meter, tried)
            finally:
                upstream.outstanding -= 1
        return await self._exhausted(send, call, last, tried)

    async def _relay(
        self,
        receive: Receive,
        send: Send,
        call: Call,
        upstream: Upstream,
        answer: Streamed,
        meter: TokenMeter,
        tried: list[Upstream],
    ) -> tuple[int, str]:
        """Send the chosen answer on, part by part, until it ends, fails, or the client leaves."""
        headers = [*answer.headers, call.id_header, (b"x-polycloud-cluster", upstream.cluster_header)]
        if tried:
            headers.append((TRIED_HEADER, ",".join(dict.fromkeys(u.cluster for u in tried)).encode()))
        meter.events = meter.events and any(
            n == b"content-type" and v.startswith(b"text/event-stream") for n, v in answer.headers
        )
        if meter.events:
            headers = [(n, v) for n, v in headers if n != b"content-length"]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        ok, status = True, answer.status
        with _ClientWatch(receive) as watch:
            try:
                while part := await _next_part(answer, upstream):
                    out = meter.feed(part)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
            except (Broken, TimeoutError) as e:
                ok = False
                kind: FailureKind = "broken" if isinstance(e, Broken) else "timeout"
                self._proxy.failed(
                    upstream, Failure(kind, f"the answer stopped mid-way: {e}"), time.monotonic()
                )
            except asyncio.CancelledError:
                if not watch.gone():
                    raise
                ok, status = False, CLIENT_CLOSED  # the client left: stop reading (the replica stops too)
            finally:
                answer.close()
        if status != CLIENT_CLOSED:
            tail = meter.flush()
            if not ok and meter.events:
                why = f"the replica in {upstream.cluster} failed mid-answer; retry the request"
                tail += b"data: " + error_body(why, "server_error", "upstream_failed") + b"\n\n"
            await send({"type": "http.response.body", "body": tail})
        now = time.monotonic()
        if ok:
            self._proxy.succeeded(upstream, now)
        usage = meter.metered = meter.usage()
        self._revisions.attempted(call.service, upstream.revision, ok, responsive_s(meter) * 1e3)
        self._metrics.attempted(call.service, upstream.cluster, "ok" if ok else "broken")
        self._metrics.streamed(call.service, upstream.cluster, upstream.revision, usage)
        return status, upstream.cluster

    async def _exhausted(
        self, send: Send, call: Call, last: tuple[Streamed, bytes] | Failure | None, tried: list[Upstream]
    ) -> tuple[int, str]:
        extra = [call.id_header]
        if tried:
            extra.append((TRIED_HEADER, ",".join(dict.fromkeys(u.cluster for u in tried)).encode()))
        if isinstance(last, tuple):
            answer, body = last
            head = [*answer.headers, (b"content-length", str(len(body)).encode()), *extra]
            head.append((b"x-polycloud-cluster", tried[-1].cluster_header))
            await send({"type": "http.response.start", "status": answer.status, "headers": head})
            await send({"type": "http.response.body", "body": body})
            return answer.status, tried[-1].cluster
        why = f"; last: {last.message}" if last is not None else ""
        if time.monotonic() >= call.deadline:
            await send_openai_error(
                send, 504, f"deadline passed for model {call.service!r}{why}", "timeout", extra
            )
            return 504, ""
        retry = (b"retry-after", str(self._settings.retry_after_s).encode())
        message = f"every replica tried for model {call.service!r} failed ({len(tried)} attempts{why})"
        await send_openai_error(send, 503, message, "no_replica", [*extra, retry])
        return 503, ""


def responsive_s(meter: TokenMeter) -> float:
    """How long the client waited for the answer: to its first token when streamed, else to its end.
    It is the latency of LLM answers everywhere a latency is judged — the request-duration metric, load
    reports (SLO `p99Ms`, autoscaling) and canary judging — since a stream's full length is the
    length of the answer, not the service's speed."""
    usage = meter.metered
    if usage is not None and usage.first_token_s is not None:
        return usage.first_token_s
    return time.perf_counter() - meter.started


def prompt_prefix(data: dict[str, Any]) -> bytes | None:
    """The start of a request's prompt (`PREFIX_CHARS`: a system prompt, or the opening of a
    conversation), which decides its replica under prefix affinity; None when it has no text."""
    messages = data.get("messages")
    if isinstance(messages, list):
        parts = [m.get("content") for m in messages if isinstance(m, dict)]
        text = "\n".join(p if isinstance(p, str) else json.dumps(p) for p in parts if p is not None)
    else:
        prompt = data.get("prompt", data.get("input"))
        text = prompt if isinstance(prompt, str) else json.dumps(prompt) if prompt is not None else ""
    return text[:PREFIX_CHARS].encode() if text else None


async def _drain(answer: Streamed) -> bytes:
    """A failed answer's body (bounded), read to its end so its connection can be reused."""
    parts: list[bytes] = []
    size = 0
    try:
        while part := await answer.read(5.0):
            size += len(part)
            if size <= MAX_ERROR_BODY:
                parts.append(part)
    except (Broken, TimeoutError):
        pass
    finally:
        answer.close()
    return b"".join(parts)


class _ClientWatch:
    """While a relay runs: cancels the relaying task when the client disconnects (its request body was
    read whole, so the next ASGI message can only be the disconnect)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self._gone = False

    def __enter__(self) -> _ClientWatch:
        self._watcher = asyncio.ensure_future(self._wait())
        return self

    async def _wait(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        if self._task is not None:
            self._task.cancel()

    def gone(self) -> bool:
        """Whether the client left (and the relaying task's cancellation was this watch's): takes the
        cancellation back."""
        if self._gone and self._task is not None:
            self._task.uncancel()
        return self._gone

    def __exit__(self, *_: object) -> None:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()


async def _next_part(answer: Streamed, upstream: Upstream) -> bytes:
    """The answer's next part (b"" at its end); waits while the replica is healthy, up to IDLE_TIMEOUT_S.

    Raises:
        TimeoutError: Nothing came in time, or the replica stopped answering health checks meanwhile.
        Broken: The connection failed mid-answer.
    """
    waited = 0.0
    while not await answer.arrived(FROZEN_CHECK_S):
        waited += FROZEN_CHECK_S
        if waited >= FROZEN_AFTER_S and not upstream.healthy:
            raise TimeoutError(f"no token for {waited:.0f} s and the replica stopped answering health checks")
        if waited >= IDLE_TIMEOUT_S:
            raise TimeoutError(f"no token for {waited:.0f} s")
    return await answer.read(IDLE_TIMEOUT_S)
