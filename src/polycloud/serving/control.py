"""What every replica answers whatever it serves: health, metrics, the fault admin API, the simulated
network, and the JSON helpers of its answers.

A replica is polycloud's ONNX server (`polycloud.serving.app`), its built-in LLM runtime
(`polycloud.serving.llm`) or a sidecar in front of a server of the user's (`polycloud.serving.sidecar`);
all three share `ReplicaBase` and `control_routes`, so the driver probes, faults and counts them alike.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polycloud.pki.identities import CONTROL_ROLES
from polycloud.serving.faults import Faults, InvalidFaults
from polycloud.serving.metrics import ReplicaMetrics
from polycloud.serving.mtls import peer_role
from polycloud.serving.predictions import PredictionSampler
from polycloud.serving.protocol import InvalidRequest, decode_json, error_body
from polycloud.serving.tracing import ReplicaTracer

JSON = "application/json"
MAX_BODY_BYTES = 64 * 2**20
"""Largest inference body a replica reads (the gateway's default limit): a larger one is a 413."""


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The request's body, or None when it declares or sends over `limit` bytes (then no more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def json_response(data: Any, status: int = 200) -> Response:
    """`data` as a compact JSON answer."""
    return Response(json.dumps(data, separators=(",", ":")).encode(), status, media_type=JSON)


def error_response(message: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    """`{"error": message}` with `status`."""
    return Response(error_body(message), status, headers=headers, media_type=JSON)


class ReplicaBase:
    """Readiness, faults, metrics and the control endpoints' access rule, shared by every replica kind."""

    def __init__(
        self,
        faults: Faults,
        metrics: ReplicaMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tracer: ReplicaTracer | None = None,
        mutual_tls: bool = False,
    ) -> None:
        """Create the shared state.

        Args:
            faults: Simulated delay and error rate.
            metrics: Where requests are counted.
            sleep: How the simulated delay is waited (tests pass a fake).
            tracer: Spans and request logs of inferences; None: neither.
            mutual_tls: Served over mutual TLS: the control endpoints then answer only servers and
                admins (inference needs any fleet client certificate, which the handshake checked).
        """
        self.mutual_tls = mutual_tls
        self.faults = faults
        self.metrics = metrics
        self.sleep = sleep
        self.ready = True
        self.tracer = tracer
        self.predictions = PredictionSampler()
        self.revision = metrics.labels.revision

    exit_status: int | None = None
    """Set when what the replica runs ended on its own (the process then exits with it)."""

    async def begin(self, stop: Callable[[], None]) -> None:
        """Start what the replica runs beside its server (nothing by default); `stop` ends the server."""

    async def end(self, grace_s: float) -> None:
        """Stop it once the server has drained (nothing by default)."""

    def close(self) -> None:
        """Release what the replica holds (threads, child processes); nothing by default."""

    async def health_live(self, request: Request) -> Response:
        """`GET /v2/health/live`."""
        return json_response({"live": True})

    async def health_ready(self, request: Request) -> Response:
        """`GET /v2/health/ready`."""
        return json_response({"ready": self.ready}, 200 if self.ready else 503)

    async def metrics_text(self, request: Request) -> Response:
        """`GET /metrics`."""
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    def not_control_peer(self, request: Request) -> Response | None:
        """A 403 unless the caller may use the control endpoints (anyone without mutual TLS)."""
        if not self.mutual_tls or peer_role(request) in CONTROL_ROLES:
            return None
        return error_response(
            "only a polycloud server or an admin certificate may use the control endpoints", 403
        )

    async def sampled_predictions(self, request: Request) -> Response:
        """`GET /_polycloud/predictions`."""
        refused = self.not_control_peer(request)
        if refused is not None:
            return refused
        values, total = self.predictions.snapshot()
        return json_response({"revision": self.revision, "total": total, "values": values})

    async def fault_settings(self, request: Request) -> Response:
        """`GET` and `POST /_polycloud/faults`."""
        refused = self.not_control_peer(request)
        if refused is not None:
            return refused
        if request.method == "POST":
            body = await read_limited(request, 64 * 1024)
            try:
                if body is None:
                    raise InvalidRequest("the body is larger than 64 KiB")
                self.faults.update(decode_json(body))
            except (InvalidRequest, InvalidFaults) as e:
                return error_response(str(e), 400)
        return json_response(self.faults.to_json())


def control_routes(replica: ReplicaBase) -> list[Route]:
    """The routes every replica answers: health, metrics and the two control endpoints."""
    return [
        Route("/v2/health/live", replica.health_live, methods=["GET"]),
        Route("/v2/health/ready", replica.health_ready, methods=["GET"]),
        Route("/metrics", replica.metrics_text, methods=["GET"]),
        Route("/_polycloud/faults", replica.fault_settings, methods=["GET", "POST"]),
        Route("/_polycloud/predictions", replica.sampled_predictions, methods=["GET"]),
    ]


InferencePath = Callable[[str, str], bool]
"""(method, path) → whether the request is an inference (counted, timed, fault-injected)."""


def oip_inference(method: str, path: str) -> bool:
    """Open Inference Protocol inference: `POST .../infer`."""
    return method == "POST" and path.endswith("/infer")


def openai_inference(method: str, path: str) -> bool:
    """OpenAI API inference: any `POST /v1/...` (completions, chat, embeddings)."""
    return method == "POST" and path.startswith("/v1/")


class SimulatedNetwork:
    """ASGI middleware: delays the served protocol's answers by the simulated network delay, injects
    500s into inference, and counts and times inference."""

    def __init__(
        self,
        app: ASGIApp,
        replica: ReplicaBase,
        prefix: str = "/v2",
        inference: InferencePath = oip_inference,
    ) -> None:
        """Wrap `app`; `prefix` is the protocol's path root ("/v2" or "/v1"), `inference` tells which of
        its requests are inferences."""
        self.app = app
        self.replica = replica
        self.prefix = prefix
        self.inference = inference

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        prefix = self.prefix
        if scope["type"] != "http" or not (path == prefix or path.startswith(prefix + "/")):
            await self.app(scope, receive, send)
            return
        if not self.inference(scope["method"], path):
            await self._delay()
            await self.app(scope, receive, send)
            return
        await self._infer(scope, receive, send)

    async def _delay(self) -> None:
        delay = self.replica.faults.delay_s
        if delay > 0:
            await self.replica.sleep(delay)

    async def _infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.replica.metrics
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tracer = self.replica.tracer
        span, request_id = tracer.start(scope["headers"], path=scope["path"]) if tracer else (None, "")
        metrics.started()
        try:
            await self._delay()
            if self.replica.faults.should_fail():
                await error_response("injected fault: this replica fails a share of requests", 500)(
                    scope, receive, send_status
                )
            else:
                await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            metrics.finished(status, elapsed)
            if span is not None and tracer is not None:
                tracer.finish(span, request_id, status, elapsed)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (404, 405) as the replica's JSON errors."""
    if isinstance(exc, HTTPException):
        return error_response(exc.detail, exc.status_code, exc.headers)
    return error_response("internal error", 500)
