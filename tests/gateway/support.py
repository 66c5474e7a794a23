"""Test doubles and helpers for the gateway: OIP stub replicas, servers in threads, route tables, polling.

A `StubReplica` is a minimal Open Inference Protocol server (raw ASGI) whose behaviour the test sets
from its own thread: the status of inference answers, extra delay, readiness, and a gate that holds
inference requests until released (to build up in-flight load deterministically). It records the headers
of every inference request. `ServerThread` serves any ASGI app with uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pytest
import uvicorn
from tests.support import wait_until

from polycloud.gateway import (
    ClusterRoute,
    GatewayApp,
    ReplicaRoute,
    RouteSource,
    RouteTable,
    ServiceRoutes,
    StaticRouteSource,
)

T = TypeVar("T")
Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class StubReplica:
    """An OIP replica double serving model `model`; answers name `cluster` in their JSON."""

    def __init__(self, cluster: str, model: str = "m") -> None:
        self.cluster = cluster
        self.model = model
        self.infer_status = 200
        self.infer_delay_s = 0.0
        self.delay_s = 0.0
        """Added to every answer, health checks included."""
        self.ready = True
        self.hits = 0
        """Inference requests received."""
        self.in_flight = 0
        self.seen_headers: list[dict[str, str]] = []
        self._holding = False
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def hold(self) -> None:
        """Hold inference requests from now on until `release`."""
        self._holding = True

    def release(self) -> None:
        """Let held requests (and later ones) through."""
        self._holding = False
        loop, gate = self._loop, self._gate
        if loop is not None and gate is not None:
            loop.call_soon_threadsafe(gate.set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self._loop = asyncio.get_running_loop()
        while (await receive()).get("more_body", False):
            pass
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        path = scope["path"]
        base = f"/v2/models/{self.model}"
        if path == "/v2/health/ready":
            await self._send(send, 200 if self.ready else 503, {"ready": self.ready})
        elif path == f"{base}/infer":
            await self._infer(scope, send)
        elif path == base:
            await self._send(send, 200, {"name": self.model, "platform": "stub", "cluster": self.cluster})
        elif path == f"{base}/ready":
            await self._send(send, 200 if self.ready else 503, {"name": self.model, "ready": self.ready})
        else:
            await self._send(send, 404, {"error": f"no such path {path}"})

    async def _infer(self, scope: Scope, send: Send) -> None:
        self.hits += 1
        self.seen_headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        self.in_flight += 1
        try:
            if self._holding:
                if self._gate is None or self._gate.is_set():
                    self._gate = asyncio.Event()
                await self._gate.wait()
            if self.infer_delay_s:
                await asyncio.sleep(self.infer_delay_s)
            status = self.infer_status
            if status >= 400:
                await self._send(send, status, {"error": f"stub error {status} from {self.cluster}"})
            else:
                outputs = [{"name": "y", "datatype": "FP32", "shape": [1], "data": [1.0]}]
                await self._send(
                    send, status, {"model_name": self.model, "cluster": self.cluster, "outputs": outputs}
                )
        finally:
            self.in_flight -= 1

    @staticmethod
    async def _send(send: Send, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        headers = [(b"content-type", b"application/json"), (b"x-stub", b"1")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def bind(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (`port` 0: any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread (`options`: more `uvicorn.Config` options)."""

    def __init__(
        self, app: Any, *, port: int = 0, lifespan: Literal["on", "off"] = "off", **options: Any
    ) -> None:
        self.app = app
        self._sock = bind(port)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", access_log=False, **options)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> ServerThread:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        wait_until(lambda: self.server.started or not self._thread.is_alive(), what="server start")
        if not self.server.started:
            pytest.fail("server did not start")
        return self

    def stop(self, *, force: bool = False) -> None:
        """Stop (idle connections close, the listener closes) and wait for the thread.

        Gracefully, requests in flight finish first; with `force`, they are abandoned.
        """
        if self._thread.is_alive():
            self.server.force_exit = force
            self.server.should_exit = True
            self._thread.join(timeout=15)
        self._sock.close()


def replica(
    stub_server: ServerThread, cluster: str, role: str = "active", state: str = "ready"
) -> ReplicaRoute:
    """The route of a stub served by `stub_server`."""
    return ReplicaRoute(
        id=f"{cluster}-{stub_server.port}", cluster=cluster, role=role, endpoint=stub_server.url, state=state
    )


def table(
    replicas: list[ReplicaRoute],
    *,
    service: str = "m",
    pattern: str = "active-active",
    clusters: list[ClusterRoute] | None = None,
    others: list[ServiceRoutes] | None = None,
) -> RouteTable:
    """A route table with one service `service` over `replicas` (plus `others`)."""
    return RouteTable.of([ServiceRoutes(service, pattern, tuple(replicas)), *(others or [])], clusters)


@dataclass
class Stub:
    """A stub replica and the server it runs on."""

    replica: StubReplica
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self, *, force: bool = False) -> None:
        self.server.stop(force=force)

    def restart(self) -> None:
        """Serve the same stub on the same port again."""
        self.server = ServerThread(self.replica, port=self.server.port).start()


@dataclass
class Gateway:
    """A gateway app, its server, and the source it reads."""

    app: GatewayApp
    server: ServerThread
    source: StaticRouteSource | RouteSource

    @property
    def url(self) -> str:
        return self.server.url

    def wait_version(self, version: int) -> None:
        """Wait until the gateway has applied at least `version` route tables."""
        wait_until(lambda: self.app.registry.version >= version, what=f"route table version {version}")


MakeStub = Callable[..., Stub]
MakeGateway = Callable[..., Gateway]

FAST = {"refresh_interval_s": 0.05, "health_interval_s": 0.1, "health_timeout_s": 0.5}
"""Settings that make tests follow changes quickly."""

INFER_BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
