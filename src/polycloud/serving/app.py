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
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from polycloud.errors import PermanentError
from polycloud.serving.control import (
    JSON,
    MAX_BODY_BYTES,
    ReplicaBase,
    SimulatedNetwork,
    control_routes,
    error_response,
    http_error,
    json_response,
    read_limited,
)
from polycloud.serving.faults import Faults
from polycloud.serving.metrics import ReplicaMetrics
from polycloud.serving.model import Model
from polycloud.serving.protocol import (
    InvalidRequest,
    NonFiniteOutput,
    encode_infer_response,
    model_metadata,
    parse_infer_request,
    server_metadata,
)
from polycloud.serving.tracing import ReplicaTracer

INFER_WORKERS = 2
"""Threads running inference: one session thread each, and replicas share the machine's cores."""


@dataclass(frozen=True)
class ServedModel:
    """The model a replica serves and the names it answers to."""

    name: str
    """The name clients use in URLs (the Service's name)."""
    version: str
    """The one version served (the revision)."""
    model: Model


class Replica(ReplicaBase):
    """polycloud's ONNX model server: the model, the inference threads and the OIP routes' handlers."""

    def __init__(
        self,
        served: ServedModel,
        faults: Faults,
        metrics: ReplicaMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tracer: ReplicaTracer | None = None,
        mutual_tls: bool = False,
    ) -> None:
        """Create the replica's application state (see `ReplicaBase` for the shared arguments).

        Args:
            served: The model and its name and version.
            faults: Simulated delay and error rate.
            metrics: Where requests are counted.
            sleep: How the simulated delay is waited (tests pass a fake).
            tracer: Spans and request logs of inferences; None: neither.
            mutual_tls: Served over mutual TLS (control endpoints for servers and admins only).
        """
        super().__init__(faults, metrics, sleep, tracer, mutual_tls)
        self.served = served
        self.revision = served.version
        self._executor = ThreadPoolExecutor(max_workers=INFER_WORKERS, thread_name_prefix="infer")

    def close(self) -> None:
        """Stop the inference threads once no request is in flight (queued work is dropped)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _unknown_model(self, request: Request) -> Response | None:
        name = request.path_params["name"]
        version = request.path_params.get("version", self.served.version)
        if name != self.served.name:
            return error_response(f"unknown model {name!r}; this replica serves {self.served.name!r}", 404)
        if version != self.served.version:
            message = f"model {name!r} has no version {version!r} (it has {self.served.version!r})"
            return error_response(message, 404)
        return None

    async def server_metadata(self, request: Request) -> Response:
        """`GET /v2`."""
        return json_response(server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        """`GET /v2/models/{name}`."""
        unknown = self._unknown_model(request)
        if unknown is not None:
            return unknown
        served = self.served
        return json_response(model_metadata(served.name, served.version, served.model.info))

    async def model_ready(self, request: Request) -> Response:
        """`GET /v2/models/{name}/ready`."""
        unknown = self._unknown_model(request)
        if unknown is not None:
            return unknown
        return json_response({"name": self.served.name, "ready": self.ready}, 200 if self.ready else 503)

    async def infer(self, request: Request) -> Response:
        """`POST /v2/models/{name}/infer`."""
        unknown = self._unknown_model(request)
        if unknown is not None:
            return unknown
        body = await read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return error_response(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
        loop = asyncio.get_running_loop()
        try:
            payload = await loop.run_in_executor(self._executor, self._infer, body)
        except InvalidRequest as e:
            return error_response(str(e), 400)
        except NonFiniteOutput as e:
            return error_response(str(e), 422)
        except PermanentError as e:
            return error_response(str(e), 500)
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


def create_app(replica: Replica) -> ASGIApp:
    """Build the ASGI application of a replica.

    Args:
        replica: The state the routes serve.
    """
    routes: list[Route] = [Route("/v2", replica.server_metadata, methods=["GET"]), *control_routes(replica)]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(prefix, replica.model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", replica.model_ready, methods=["GET"]),
            Route(f"{prefix}/infer", replica.infer, methods=["POST"]),
        ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return SimulatedNetwork(app, replica)


def create_health_app(replica: ReplicaBase) -> ASGIApp:
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
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
