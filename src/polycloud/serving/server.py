"""Running a replica: load the model, listen, serve with uvicorn, and drain gracefully on SIGTERM.

The listening socket is either inherited (`fd`: the driver binds port 0 itself, so there is no race
for a free port, and passes the descriptor) or bound here from `host` and `port`. With `health_port`, a
second uvicorn server on the same event loop answers the two health routes in plain HTTP on
`host:health_port` (`create_health_app`: probes that cannot present a client certificate reach no
more than that); it keeps answering — readiness 503 — while the main server drains, and stops after it.

SIGTERM or SIGINT marks the replica not ready, stops accepting connections, lets in-flight requests
finish within `grace_s` seconds (after that they are cancelled), and `run` returns 0. uvicorn's own
signal handling is bypassed, because it re-raises the signal after shutting down, which would end the
process with "killed by SIGTERM" instead of a clean exit. A signal that arrives while the model is
still loading ends the replica as soon as the load returns, also with status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from polycloud.errors import PermanentError, PolycloudError
from polycloud.pki.contexts import TlsFiles, Watched
from polycloud.serving.app import create_health_app
from polycloud.serving.control import ReplicaBase
from polycloud.serving.events import EventLog
from polycloud.serving.faults import Faults, FaultSettings
from polycloud.serving.kinds import build
from polycloud.serving.metrics import ReplicaLabels, ReplicaMetrics
from polycloud.serving.mtls import PeerHttpProtocol, keep_fresh
from polycloud.serving.tracing import ReplicaTracer
from polycloud.telemetry import logs, tracing
from polycloud.telemetry.recording import SpanRecorder

BACKLOG = 1024
HEALTH_GRACE_S = 1
"""How long health requests in flight may take once the main server has drained."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class ServerOptions:
    """Everything a replica is started with (the command-line flags of `python -m polycloud.serving`)."""

    model: str | None
    """The model file (for a runtime, a file, folder or URI, passed on as given); None: no model."""
    name: str
    host: str = "127.0.0.1"
    port: int = 8000
    fd: int | None = None
    """An inherited listening socket; `host` and `port` are then informational."""
    sha256: str | None = None
    delay_ms: float = 0.0
    error_rate: float = 0.0
    replica_id: str = ""
    cluster: str = ""
    revision: str = ""
    spec_hash: str = ""
    home: str = ""
    grace_s: float = 10.0
    """How long in-flight requests may take to finish after SIGTERM."""
    tls_dir: Path | None = None
    """Serve mutual TLS with the fleet certificate in this folder; None: plain HTTP."""
    health_port: int | None = None
    """Also answer the health routes, and only them, in plain HTTP on this port of `host`."""
    protocol: str = "oip-v2"
    """"oip-v2" or "openai" (a model file of the built-in LLM runtime, or what the runtime speaks)."""
    runtime: tuple[str, ...] | None = None
    """The user's server to run behind this process (`polycloud.serving.sidecar`); None: serve the model."""
    readiness_path: str = "/health"
    """The runtime's path that answers 200 once it is ready."""
    runtime_port: int | None = None
    """Relay to a server already listening on this loopback port (another container of the pod)."""

    def identity(self) -> dict[str, str]:
        """The fields every log event of the replica carries."""
        fields = {
            "replica": self.replica_id,
            "service": self.name,
            "cluster": self.cluster,
            "revision": self.revision,
            "specHash": self.spec_hash,
            "home": self.home,
        }
        return {key: value for key, value in fields.items() if value}


class _StopRequested(Exception):
    """A stop signal arrived before the server was running."""


def _stop_early(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested


def _inherited_socket(fd: int) -> socket.socket:
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        raise PermanentError(f"--fd {fd}: not an open file descriptor") from e
    if not stat.S_ISSOCK(mode):
        raise PermanentError(f"--fd {fd}: not a socket")
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        sock.close()
        raise PermanentError(f"--fd {fd}: not a stream (TCP) socket")
    try:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise PermanentError(f"--fd {fd}: cannot listen: {e.strerror or e}") from e
    return sock


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise PermanentError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


def listening_socket(options: ServerOptions) -> socket.socket:
    """The socket the replica serves on: inherited from `options.fd`, or bound to host and port.

    Raises:
        PermanentError: The descriptor is not a stream socket, or the address cannot be bound.
    """
    if options.fd is not None:
        return _inherited_socket(options.fd)
    return _bound_socket(options.host, options.port)


def _health_socket(options: ServerOptions, main: socket.socket) -> socket.socket | None:
    """The health port's socket (None without one); closes `main` when it cannot be bound."""
    if options.health_port is None:
        return None
    try:
        return _bound_socket(options.host, options.health_port)
    except PermanentError:
        main.close()
        raise


@dataclass(frozen=True)
class _Listener:
    """A second server and the socket it serves on."""

    server: uvicorn.Server
    sock: socket.socket


def _health_listener(replica: ReplicaBase, sock: socket.socket | None) -> _Listener | None:
    if sock is None:
        return None
    config = uvicorn.Config(
        create_health_app(replica),
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=HEALTH_GRACE_S,
    )
    return _Listener(_Server(config, lambda: None), sock)


def _endpoint(sock: socket.socket, scheme: str) -> str:
    address = sock.getsockname()
    if isinstance(address, tuple):
        host = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
        return f"{scheme}://{host}:{address[1]}"
    return str(address)


class _Server(uvicorn.Server):
    """uvicorn's server with signals left to the caller and a callback once it accepts requests."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


async def _serve(
    server: _Server,
    sock: socket.socket,
    replica: ReplicaBase,
    events: EventLog,
    tls: Watched | None,
    health: _Listener | None,
) -> None:
    loop = asyncio.get_running_loop()
    if tls is not None:
        refresher = asyncio.create_task(keep_fresh(tls), name="tls-refresh")
    if health is not None:
        probes = asyncio.create_task(health.server.serve(sockets=[health.sock]), name="health")

    def stop(sig: signal.Signals) -> None:
        if server.should_exit:
            server.force_exit = server.force_exit or sig == signal.SIGINT
            return
        replica.ready = False
        server.should_exit = True
        events.emit("stopping", signal=sig.name, inflight=len(server.server_state.tasks))

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)

    def ended() -> None:  # what the replica runs ended on its own: stop serving
        replica.ready = False
        server.should_exit = True

    try:
        await replica.begin(ended)
        await server.serve(sockets=[sock])
    finally:
        await replica.end(server.config.timeout_graceful_shutdown or 10)
        if tls is not None:
            refresher.cancel()
        if health is not None:  # answered "not ready" while the main server drained; now it goes too
            health.server.should_exit = True
            await probes


def _tracing(options: ServerOptions) -> SpanRecorder | None:
    """Spans to OTLP or `<home>/traces/` and JSON request logs on stdout; none without a home, or with
    `OTEL_SDK_DISABLED=true`."""
    if not options.home or tracing.disabled(os.environ):
        return None
    identity = options.identity()
    identity.pop("home", None)
    logs.configure(sys.stdout, component="replica", **identity)
    exporter = tracing.make_exporter(f"replica-{options.replica_id or 'x'}", Path(options.home), os.environ)
    return SpanRecorder(exporter, "polycloud-replica", {"polycloud.replica": options.replica_id})


def _tracer(recorder: SpanRecorder | None) -> ReplicaTracer | None:
    return None if recorder is None else ReplicaTracer(recorder, logs.request_logger("replica"))


def run(options: ServerOptions, events: EventLog | None = None) -> int:
    """Serve a model until a stop signal, then drain and return.

    Args:
        options: What to serve, where, and as whom.
        events: Where lifecycle events go (JSON lines on stdout by default).

    Returns:
        The exit status: 0 after a graceful stop.

    Raises:
        PermanentError: The model cannot be loaded or the socket cannot be used (exit status 2).
    """
    log = events or EventLog(options.identity())
    previous = {sig: signal.signal(sig, _stop_early) for sig in STOP_SIGNALS}
    started = time.monotonic()
    try:
        log.emit("loading", model=options.model or "", pid=os.getpid())
        faults = Faults(FaultSettings(options.delay_ms, options.error_rate))
        labels = ReplicaLabels(options.name, options.cluster, options.revision)
        recorder = _tracing(options)
        try:
            tls = Watched(TlsFiles(options.tls_dir)) if options.tls_dir is not None else None
            built = build(
                name=options.name,
                revision=options.revision,
                protocol=options.protocol,
                model=options.model,
                sha256=options.sha256,
                runtime=options.runtime,
                readiness_path=options.readiness_path,
                runtime_port=options.runtime_port,
                faults=faults,
                metrics=ReplicaMetrics(labels),
                tracer=_tracer(recorder),
                mutual_tls=tls is not None,
            )
            sock = listening_socket(options)
            health_sock = _health_socket(options, sock)
        except PolycloudError as e:
            log.emit("failed", error=str(e))
            raise
        replica = built.replica
        config = uvicorn.Config(
            built.app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=int(options.grace_s),
            http=PeerHttpProtocol if tls is not None else "auto",
        )
        if tls is not None:
            config.load()
            config.ssl = tls.context  # ours, reloaded on renewal (uvicorn's would be fixed at start)

        def ready() -> None:
            seconds = round(time.monotonic() - started, 3)
            scheme = "https" if tls is not None else "http"
            where = {"health": _endpoint(health_sock, "http")} if health_sock is not None else {}
            log.emit(
                "ready",
                endpoint=_endpoint(sock, scheme),
                sha256=built.sha256,
                loadSeconds=seconds,
                **where,
            )

        health = _health_listener(replica, health_sock)
        try:
            asyncio.run(_serve(_Server(config, ready), sock, replica, log, tls, health))
        finally:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            replica.close()
            if recorder is not None:
                recorder.shutdown()  # exports the spans still queued
    except _StopRequested:
        log.emit("stopped", reason="signal before ready")
        return 0
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    if replica.exit_status is not None:
        log.emit("stopped", reason="the runtime command exited", status=replica.exit_status)
        return replica.exit_status
    log.emit("stopped")
    return 0
