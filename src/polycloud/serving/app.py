"""The replica's HTTP application: Open Inference Protocol v2 REST, `/metrics` and the fault admin API.

Routes (a `{version}` segment is optional after the model name, `/v2/models/{name}/versions/{v}/...`):

    GET  /v2                          server metadata
    GET  /v2/health/live              200 while the process serves
    GET  /v2/health/ready             200 once the model is loaded, 503 while shutting down
    GET  /v2/models/{name}            model metadata (inputs and outputs: name, datatype, shape)
    GET  /v2/models/{name}/ready      as /v2/health/ready, for the model
    POST /v2/models/{name}/infer      inference on JSON tensors
    GET  /metrics                     Prometheus text format
    GET  /_polycloud/faults           the injected extra delay and error rate
    GET  /_polycloud/predictions      sampled output values, for drift detection
    POST /_polycloud/faults           change them: {"delayMs": float, "errorRate": float}

A replica may also listen on a plain-HTTP health port (`create_health_app`) that answers only the two
health routes, for probes that cannot present a client certificate (the kubelet's).

Errors are JSON `{"error": "..."}`: 400 for a request that does not fit the model (malformed or too
deeply nested JSON, NaN or infinite inputs included), 404 for another model name or path, 413 for a
body over 64 MiB, 422 when the model answers NaN or infinity (JSON cannot carry it), 500 for an
injected fault or a model failure. Client errors are 4xx so that they never count against a replica.
Inference (JSON decoding, checks, the model run, encoding) runs in a small thread pool so the event
loop stays free for health checks. Every `/v2` answer is delayed by the simulated network delay (`faults`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polycloud.errors import PermanentError
from polycloud.pki.identities import CONTROL_ROLES
from polycloud.serving.faults import Faults, InvalidFaults
from polycloud.serving.metrics import ReplicaMetrics
from polycloud.serving.model import Model
from polycloud.serving.mtls import peer_role
from polycloud.serving.predictions import PredictionSampler
from polycloud.serving.protocol import (
    InvalidRequest,
    NonFiniteOutput,
    decode_json,
    encode_infer_response,
    error_body,
    model_metadata,
    parse_infer_request,
    server_metadata,
)
from polycloud.serving.tracing import ReplicaTracer

JSON = "application/json"
INFER_WORKERS = 2
"""Threads running inference: one session thread each, and replicas share the machine's cores."""


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


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")).encode(), status, media_type=JSON)


def _error(message: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(message), status, headers=headers, media_type=JSON)


@dataclass(frozen=True)
class ServedModel:
    """The model a replica serves and the names it answers to."""

    name: str
    """The name clients use in URLs (the Service's name)."""
    version: str
    """The one version served (the revision)."""
    model: Model


class Replica:
    """The state behind the routes: the model, readiness, faults, metrics and the inference threads."""

    def __init__(
        self,
        served: ServedModel,
        faults: Faults,
        metrics: ReplicaMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tracer: ReplicaTracer | None = None,
        mutual_tls: bool = False,
    ) -> None:
        """Create the replica's application state.

        Args:
            served: The model and its name and version.
            faults: Simulated delay and error rate.
            metrics: Where requests are counted.
            sleep: How the simulated delay is waited (tests pass a fake).
            tracer: Spans and request logs of inferences; None: neither.
            mutual_tls: Served over mutual TLS: the control endpoints then answer only servers and
                admins (inference needs any fleet client certificate, which the handshake checked).
        """
        self.mutual_tls = mutual_tls
        self.served = served
        self.faults = faults
        self.metrics = metrics
        self.sleep = sleep
        self.ready = True
        self.tracer = tracer
        self.predictions = PredictionSampler()
        self._executor = ThreadPoolExecutor(max_workers=INFER_WORKERS, thread_name_prefix="infer")

    def close(self) -> None:
        """Stop the inference threads once no request is in flight (queued work is dropped)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _unknown_model(self, request: Request) -> Response | None:
        name = request.path_params["name"]
        version = request.path_params.get("version", self.served.version)
        if name != self.served.name:
            return _error(f"unknown model {name!r}; this replica serves {self.served.name!r}", 404)
        if version != self.served.version:
            return _error(f"model {name!r} has no version {version!r} (it has {self.served.version!r})", 404)
        return None

    async def server_metadata(self, request: Request) -> Response:
        """`GET /v2`."""
        return _json(server_metadata())

    async def health_live(self, request: Request) -> Response:
        """`GET /v2/health/live`."""
        return _json({"live": True})

    async def health_ready(self, request: Request) -> Response:
        """`GET /v2/health/ready`."""
        return _json({"ready": self.ready}, 200 if self.ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        """`GET /v2/models/{name}`."""
        unknown = self._unknown_model(request)
        if unknown is not None:
            return unknown
        served = self.served
        return _json(model_metadata(served.name, served.version, served.model.info))

    async def model_ready(self, request: Request) -> Response:
        """`GET /v2/models/{name}/ready`."""
        unknown = self._unknown_model(request)
        if unknown is not None:
            return unknown
        return _json({"name": self.served.name, "ready": self.ready}, 200 if self.ready else 503)

    async def infer(self, request: Request) -> Response:
        """`POST /v2/models/{name}/infer`."""
        unknown = self._unknown_model(request)
        if unknown is not None:
            return unknown
        body = await read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return _error(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
        loop = asyncio.get_running_loop()
        try:
            payload = await loop.run_in_executor(self._executor, self._infer, body)
        except InvalidRequest as e:
            return _error(str(e), 400)
        except NonFiniteOutput as e:
            return _error(str(e), 422)
        except PermanentError as e:
            return _error(str(e), 500)
        return Response(payload, media_type=JSON)

    def _infer(self, body: bytes) -> bytes:
        served = self.served
        request = parse_infer_request(body, served.model.info)
        try:
            outputs = served.model.run(request.inputs, request.outputs)
        except ValueError as e:
            raise InvalidRequest(f"the model rejected the inputs: {e}") from e
        self.predictions.observe(outputs)
        return encode_infer_response(served.name, served.version, request.id, outputs)

    async def metrics_text(self, request: Request) -> Response:
        """`GET /metrics`."""
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    def _not_control_peer(self, request: Request) -> Response | None:
        if not self.mutual_tls or peer_role(request) in CONTROL_ROLES:
            return None
        return _error("only a polycloud server or an admin certificate may use the control endpoints", 403)

    async def sampled_predictions(self, request: Request) -> Response:
        """`GET /_polycloud/predictions`."""
        refused = self._not_control_peer(request)
        if refused is not None:
            return refused
        values, total = self.predictions.snapshot()
        return _json({"revision": self.served.version, "total": total, "values": values})

    async def fault_settings(self, request: Request) -> Response:
        """`GET` and `POST /_polycloud/faults`."""
        refused = self._not_control_peer(request)
        if refused is not None:
            return refused
        if request.method == "POST":
            body = await read_limited(request, 64 * 1024)
            try:
                if body is None:
                    raise InvalidRequest("the body is larger than 64 KiB")
                self.faults.update(decode_json(body))
            except InvalidRequest as e:
                return _error(str(e), 400)
            except InvalidFaults as e:
                return _error(str(e), 400)
        return _json(self.faults.to_json())


class SimulatedNetwork:
    """ASGI middleware: delays `/v2` answers, injects 500s into inference, and measures inference."""

    def __init__(self, app: ASGIApp, replica: Replica) -> None:
        self.app = app
        self.replica = replica

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v2" or path.startswith("/v2/")):
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or not path.endswith("/infer"):
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
                await _error("injected fault: this replica fails a share of requests", 500)(
                    scope, receive, send_status
                )
            else:
                await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            metrics.finished(status, elapsed)
            if span is not None and tracer is not None:
                tracer.finish(span, request_id, status, elapsed)


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _error(exc.detail, exc.status_code, exc.headers)
    return _error("internal error", 500)


def create_app(replica: Replica) -> ASGIApp:
    """Build the ASGI application of a replica.

    Args:
        replica: The state the routes serve.
    """
    routes: list[Route] = [
        Route("/v2", replica.server_metadata, methods=["GET"]),
        Route("/v2/health/live", replica.health_live, methods=["GET"]),
        Route("/v2/health/ready", replica.health_ready, methods=["GET"]),
        Route("/metrics", replica.metrics_text, methods=["GET"]),
        Route("/_polycloud/faults", replica.fault_settings, methods=["GET", "POST"]),
        Route("/_polycloud/predictions", replica.sampled_predictions, methods=["GET"]),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(prefix, replica.model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", replica.model_ready, methods=["GET"]),
            Route(f"{prefix}/infer", replica.infer, methods=["POST"]),
        ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return SimulatedNetwork(app, replica)


def create_health_app(replica: Replica) -> ASGIApp:
    """The application of the plain-HTTP health port: `GET /v2/health/live` and `/v2/health/ready`
    as on the main port, without the simulated delay; any other path is a 404 (other methods on those
    two a 405), so nothing but liveness and readiness is reachable without a client certificate.

    Args:
        replica: The state the two routes read.
    """
    routes = [
        Route("/v2/health/live", replica.health_live, methods=["GET"]),
        Route("/v2/health/ready", replica.health_ready, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
