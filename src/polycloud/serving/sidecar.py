"""A replica that runs a model server polycloud did not write (a Service's `runtime.command`).

The process polycloud starts is this sidecar: it serves the replica's port (mutual TLS with the
fleet certificate, like polycloud's own server), starts the user's server as its child on a loopback
port of its own, and relays every request to it — streamed answers part by part, as they come — so
the user's server is reached only through the sidecar (the Istio pattern, without a mesh). The
sidecar itself answers what every replica answers (`polycloud.serving.control`: health, metrics,
faults), so drivers, drills and the gateway treat the replica like any other:

- `/v2/health/ready` is 503 until the child's `readinessPath` answers 200, then follows the child's
  liveness; the child exiting ends the sidecar (status 3), so the driver sees a failed replica;
- injected delay and errors apply to the relayed inference requests (`POST /v1/...` for the OpenAI
  protocol, `POST .../infer` for OIP);
- the child dies with the sidecar, even on SIGKILL (`PR_SET_PDEATHSIG`), and gets SIGTERM on a
  graceful stop, after the sidecar has drained.

`${PORT}` and `${MODEL}` in the command are replaced by the child's port and the model's path (also
set as the environment variables `PORT` and `MODEL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from polycloud.errors import PermanentError
from polycloud.proxying.connections import Broken, ConnectFailed, ConnectionPools
from polycloud.serving.control import (
    MAX_BODY_BYTES,
    InferencePath,
    ReplicaBase,
    SimulatedNetwork,
    control_routes,
    http_error,
    oip_inference,
    openai_inference,
)
from polycloud.serving.faults import Faults
from polycloud.serving.metrics import ReplicaMetrics
from polycloud.serving.tracing import ReplicaTracer

log = logging.getLogger(__name__)

READY_POLL_S = 0.2
"""How often the child's readiness path is asked until it answers 200."""
LIVENESS_POLL_S = 1.0
HEAD_TIMEOUT_S = 600.0
"""How long a relayed request may wait for the answer's head (a long prompt's prefill included)."""
IDLE_TIMEOUT_S = 300.0
"""How long a relayed answer may pause between two parts."""
CHILD_EXITED = 3
"""The sidecar's exit status when the user's server exited."""
CONTROL_PATHS = frozenset(
    {"/v2/health/live", "/v2/health/ready", "/metrics", "/_polycloud/faults", "/_polycloud/predictions"}
)
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)


@dataclass(frozen=True)
class RuntimeCommand:
    """The user's server: its argv (placeholders unreplaced), readiness path and model."""

    argv: tuple[str, ...]
    """Empty: attach to a server started by someone else (a container beside this one) on `port`."""
    readiness_path: str = "/health"
    model: str = ""
    protocol: str = "openai"
    port: int | None = None
    """The server's loopback port; None: a free one, chosen for the child."""


def free_loopback_port() -> int:
    """A port of 127.0.0.1 free right now, for the child to bind (it binds the port itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def substitute(argv: Sequence[str], port: int, model: str) -> list[str]:
    """`argv` with `${PORT}` and `${MODEL}` replaced."""
    return [a.replace("${PORT}", str(port)).replace("${MODEL}", model) for a in argv]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the sidecar dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RuntimeReplica(ReplicaBase):
    """The sidecar's state: the child process, its readiness, and the relay's connection pool."""

    def __init__(
        self,
        command: RuntimeCommand,
        faults: Faults,
        metrics: ReplicaMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tracer: ReplicaTracer | None = None,
        mutual_tls: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare the sidecar for `command`; `start` runs the child."""
        super().__init__(faults, metrics, sleep, tracer, mutual_tls)
        self.ready = False
        self.command = command
        self.port = command.port or free_loopback_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._env = dict(os.environ if env is None else env)
        self._child: subprocess.Popen[bytes] | None = None
        self._pools: ConnectionPools | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def inference(self) -> InferencePath:
        """Which relayed requests count as inference."""
        return openai_inference if self.command.protocol == "openai" else oip_inference

    def spawn(self) -> None:
        """Start the user's server (stdout and stderr shared with the sidecar's log); nothing to start
        when attached to a server of its own.

        Raises:
            PermanentError: It cannot be executed.
        """
        if not self.command.argv:
            return
        argv = substitute(self.command.argv, self.port, self.command.model)
        env = self._env | {"PORT": str(self.port), "MODEL": self.command.model}
        try:
            self._child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent
            )
        except OSError as e:
            raise PermanentError(f"cannot start the runtime command {argv[0]!r}: {e.strerror or e}") from e

    async def begin(self, stop: Callable[[], None]) -> None:
        """Start the child, open the relay's pool and watch the child: ready once its readiness path
        answers 200; `stop` is called if it exits on its own."""
        self.spawn()
        loop = asyncio.get_running_loop()
        self._pools = ConnectionPools(loop, limit=256, keepalive_s=4.0, connect_timeout_s=2.0)
        self._watch = asyncio.create_task(self._watch_child(stop), name="runtime-child")

    async def _watch_child(self, on_exit: Callable[[], None]) -> None:
        child, pools = self._child, self._pools
        assert pools is not None
        path = self.command.readiness_path
        while True:
            status = child.poll() if child is not None else None
            if status is not None:
                self.ready = False
                self.exit_status = CHILD_EXITED
                log.error("the runtime command exited with status %s", status)
                on_exit()
                return
            ok = await self._probe(pools, path)
            if ok and not self.ready:
                log.info("the runtime server answers %s: ready", path)
            self.ready = ok
            await asyncio.sleep(LIVENESS_POLL_S if ok else READY_POLL_S)

    async def _probe(self, pools: ConnectionPools, path: str) -> bool:
        try:
            answer = await pools.stream(self.endpoint, "GET", path, [], b"", 2.0)
            with contextlib.suppress(TimeoutError, Broken):
                while await answer.read(2.0):
                    pass
            answer.close()
        except (ConnectFailed, TimeoutError, Broken):
            return False
        return answer.status == 200

    async def end(self, grace_s: float) -> None:
        """SIGTERM the child, SIGKILL it after `grace_s`, and close the pool."""
        if self._watch is not None:
            self._watch.cancel()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(child.wait), grace_s)
            except TimeoutError:
                child.kill()
                await asyncio.to_thread(child.wait)
        if self._pools is not None:
            await self._pools.close()

    def close(self) -> None:
        """Make sure the child is gone (the last resort after a failed start)."""
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()

    async def relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay one request to the child and its answer back, part by part."""
        pools = self._pools
        body = await _read_body(receive)
        if body is _GONE:
            return  # the client left before its request was whole: nothing to relay
        if body is None or pools is None:
            status, message = (413, b"request body too large") if body is None else (503, b"not started")
            await _plain(send, status, message)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        target = (raw + b"?" + query if query else raw).decode("latin-1")
        try:
            answer = await pools.stream(self.endpoint, scope["method"], target, headers, body, HEAD_TIMEOUT_S)
        except (ConnectFailed, TimeoutError, Broken) as e:
            await _plain(send, 502, f"the runtime server did not answer: {e or type(e).__name__}".encode())
            return
        kept = [(k.lower(), v) for k, v in answer.headers if k.lower() not in HOP_BY_HOP]
        await send({"type": "http.response.start", "status": answer.status, "headers": kept})
        try:
            while part := await answer.read(IDLE_TIMEOUT_S):
                await send({"type": "http.response.body", "body": part, "more_body": True})
        finally:
            answer.close()  # a cut answer raised above: the server then cuts the client's connection too
        await send({"type": "http.response.body", "body": b""})


_GONE = b"\0gone"
"""What `_read_body` returns when the client disconnected (compared by identity)."""


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None past `MAX_BODY_BYTES`; `_GONE` when the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _GONE
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _plain(send: Send, status: int, message: bytes) -> None:
    body = json.dumps({"error": message.decode(errors="replace")}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_sidecar_app(replica: RuntimeReplica) -> ASGIApp:
    """The sidecar's ASGI application: the control routes, everything else relayed."""
    control = Starlette(routes=control_routes(replica), exception_handlers={HTTPException: http_error})
    relayed = SimulatedNetwork(
        replica.relay,
        replica,
        prefix="/v1" if replica.command.protocol == "openai" else "/v2",
        inference=replica.inference,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CONTROL_PATHS:
            await control(scope, receive, send)
        elif scope["type"] == "http":
            await relayed(scope, receive, send)

    return app
