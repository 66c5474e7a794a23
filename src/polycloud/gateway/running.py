"""The gateway process: `python -m polycloud.gateway --addr HOST:PORT --database-url URL [--home DIR]`.

`polycloud gateway` runs it in the foreground, and `polycloud up` starts it detached (its own session)
or adopts the one already running for its home (`polycloud.server.children`): a gateway never dies
because a control-plane process died. It reads routes from the state store at `--database-url` (and
reports its load and heartbeats there every second), serves on `--addr` (or on an inherited listening
socket, `--fd`) with uvicorn, and on SIGTERM or SIGINT drains: readiness turns 503, the listener
closes, requests in flight may finish for `--drain-timeout` seconds; it leaves the store's members and
exits 0. Exit status 1: bad arguments, an address it cannot listen on, or another gateway running for
`--home`; 3: the application did not start.

Statically stable: it attaches to the store without connecting or migrating (`Store.attach`), so it
starts while the database is down and never changes the schema; every store call fails transiently
until the database answers, and the gateway routes on what it last knew meanwhile. With `--home` it
holds the home's gateway lock and run file (`polycloud.gateway.presence`) and keeps an on-disk copy of
its routes and keys (`polycloud.gateway.snapshot`), from which it serves at once when it restarts.
Without `--home` (tests, benchmarks, embedding) it keeps no file at all.

Unset options come from the polycloud settings (`POLYCLOUD_GATEWAY_ADDR`, `POLYCLOUD_DATABASE_URL`,
`POLYCLOUD_GATEWAY_REGION`; the default SQLite database is under `--home` when given), read here, at
the process edge, only.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from polycloud.catalog import load_catalog
from polycloud.errors import PolycloudError, UserError
from polycloud.gateway.app import GatewayApp, create_app
from polycloud.gateway.certificates import GatewayCredentials
from polycloud.gateway.keys import KeySource
from polycloud.gateway.keystore import StoreKeySource
from polycloud.gateway.policies import routing_policies
from polycloud.gateway.presence import GatewayInfo, Presence, store_fingerprint
from polycloud.gateway.routes import RouteSource
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.snapshot import SavingKeySource, SavingRouteSource, saved_keys, saved_routes
from polycloud.gateway.sourcing import StoreLoadSink, StoreRouteSource
from polycloud.gateway.tracing import GatewayTracer
from polycloud.gateway.wholewrites import WholeWritesProtocol
from polycloud.loops import Loop
from polycloud.pki.identities import gateway as gateway_identity
from polycloud.settings import Settings
from polycloud.state import MemberInput, Store
from polycloud.telemetry import logs, tracing
from polycloud.telemetry.recording import SpanRecorder

log = logging.getLogger("polycloud.gateway")

EXIT_USAGE = 1
EXIT_STARTUP = 3
LEAVE_TIMEOUT_S = 2.0
"""How long a stopping gateway waits to remove itself from the store's members."""
SERVER_OPTIONS: dict[str, Any] = {
    "http": WholeWritesProtocol,  # one write per answer, not two
    "proxy_headers": False,  # nothing reads the client's address: no middleware hop per request
}
"""uvicorn options of the gateway's request path (tests serve the gateway with them too)."""


def split_addr(addr: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) as a (host, port) pair.

    Raises:
        UserError: Not of that shape, or the port is out of range.
    """
    host, colon, port = addr.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"--addr must be HOST:PORT (e.g. 127.0.0.1:8080), not {addr!r}")
    return host, int(port)


def parse_args(argv: list[str] | None, defaults: Settings) -> argparse.Namespace:
    """Read the command line; `defaults` fills in what it leaves out."""
    parser = argparse.ArgumentParser(prog="python -m polycloud.gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--addr", default=defaults.gateway_addr, help="HOST:PORT to listen on")
    parser.add_argument(
        "--fd", type=int, default=None, help="serve on this inherited listening socket instead"
    )
    parser.add_argument("--database-url", default=None, help="the state store (SQLite or PostgreSQL URL)")
    parser.add_argument(
        "--home", default=None, help="keep the lock, run file and on-disk copy of routes and keys here"
    )
    parser.add_argument(
        "--region", default=defaults.gateway_region, help="where the gateway is: provider/region"
    )
    parser.add_argument("--routing-policy", default="locality", choices=routing_policies())
    parser.add_argument("--health-interval", type=float, default=1.0, help="seconds between health checks")
    parser.add_argument("--timeout", type=float, default=10.0, help="default request deadline in seconds")
    parser.add_argument("--max-in-flight", type=int, default=1024, help="requests at once before 429")
    parser.add_argument(
        "--drain-timeout", type=float, default=15.0, help="seconds to finish requests on SIGTERM"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the gateway to report not-ready as soon as a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, app: GatewayApp) -> None:
        super().__init__(config)
        self.gateway = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start draining, then let uvicorn shut down gracefully."""
        self.gateway.drain()
        super().handle_exit(sig, frame)


def _ignore(sig: int, frame: FrameType | None) -> None:
    """Stands in for the default action when uvicorn re-raises the stop signal after a clean drain."""


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket inherited as file descriptor `fd`, its family read from the socket itself.

    (uvicorn's own `fd=` option assumes a Unix socket, which leaves Nagle's algorithm on for TCP and
    costs 40 ms per answer to delayed acknowledgements.)

    Raises:
        UserError: `fd` is not an open socket.
    """
    try:
        return socket.socket(fileno=fd)
    except OSError as e:
        raise UserError(f"--fd {fd} is not an open socket: {e.strerror or e}") from e


def serve(
    app: GatewayApp,
    settings: GatewaySettings,
    where: str,
    sockets: list[socket.socket],
    tls: tuple[Path, Path] | None = None,
) -> DrainingServer:
    """Serve `app` on listening `sockets` with uvicorn until a stop signal has been handled; returns the
    stopped server. `where` names the address in the log."""
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        **SERVER_OPTIONS,
        timeout_graceful_shutdown=max(1, round(settings.drain_timeout_s)),
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = DrainingServer(config, app)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore)
    log.info("gateway on %s (region %s, policy %s)", where, settings.region, settings.routing_policy)
    gc.collect()
    gc.freeze()  # what startup built lives as long as the process: keep it out of every collection
    server.run(sockets=sockets)
    return server


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free one).

    Bound here rather than by uvicorn so that the gateway knows its port before it serves (its member
    id and run file name it), and with `IPPROTO_TCP` explicitly: with protocol 0, asyncio leaves
    TCP_NODELAY off on accepted connections and every keep-alive answer waits for a delayed ACK.

    Raises:
        UserError: The address cannot be bound (taken, or not an address of this machine).
    """
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


def identity(addr: str, sock: socket.socket, scheme: str, database_url: str) -> GatewayInfo:
    """Who this gateway is, once it listens on `sock` (asked for `addr`): its member id is
    `gw-<host>-<port>`, stable across restarts on one machine and port, so a restarted gateway takes
    its own place in the fleet's members; its URL names the bound address (the host name for a
    wildcard)."""
    host, port = sock.getsockname()[:2]
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    shown = f"[{host}]" if ":" in host else host
    return GatewayInfo(
        pid=os.getpid(),
        id=f"gw-{socket.gethostname()}-{port}",
        addr=addr,
        url=f"{scheme}://{shown}:{port}",
        store=store_fingerprint(database_url),
    )


def leave_quietly(sink: StoreLoadSink, timeout_s: float = LEAVE_TIMEOUT_S) -> None:
    """Remove this gateway from the store's members, waiting at most `timeout_s` (the store may be
    down or slow to refuse; the entry then ages out by itself)."""

    def leave() -> None:
        try:
            sink.leave()
        except PolycloudError as e:
            log.info("could not leave the fleet's members (the entry ages out): %s", e)

    thread = threading.Thread(target=leave, name="gateway-leave", daemon=True)
    thread.start()
    thread.join(timeout_s)


def main(argv: list[str] | None = None) -> int:
    """Run the gateway until SIGTERM or SIGINT; returns the exit status."""
    defaults = Settings()
    args = parse_args(argv, defaults)
    if args.home:
        defaults = defaults.model_copy(update={"home": Path(args.home)})
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("polycloud").setLevel(args.log_level.upper())
    home = defaults.resolved_home if args.home else None
    with contextlib.ExitStack() as stack:
        try:
            host, port = split_addr(args.addr)
            log_sample = request_log_sample(os.environ.get("POLYCLOUD_REQUEST_LOG_SAMPLE", ""))
            settings = GatewaySettings(
                region=args.region or None,
                routing_policy=args.routing_policy,
                health_interval_s=args.health_interval,
                default_timeout_s=args.timeout,
                max_in_flight=args.max_in_flight,
                drain_timeout_s=args.drain_timeout,
            )
            tls = defaults.tls
            if home is not None:
                presence = Presence(home)
                presence.acquire()
                stack.callback(presence.release)
            sock = inherited_socket(args.fd) if args.fd is not None else listen(host, port)
            stack.callback(sock.close)
            database_url = args.database_url or defaults.resolved_database_url
            me = identity(args.addr, sock, "https" if tls else "http", database_url)
            store = Store.attach(database_url)  # never connects nor migrates here
            stack.callback(store.close)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            print(f"polycloud gateway: {problems}", file=sys.stderr)
            return EXIT_USAGE
        except UserError as e:
            print(f"polycloud gateway: {e}", file=sys.stderr)
            return EXIT_USAGE
        if home is not None:
            presence.publish(me)
        recorder = None
        if not tracing.disabled(os.environ):
            exporter = tracing.make_exporter("gateway", defaults.resolved_home, os.environ)
            recorder = SpanRecorder(exporter, "polycloud-gateway")
            stack.callback(recorder.shutdown)  # exports the spans still queued
            logs.configure(sys.stderr, component="gateway")
        catalog = load_catalog()
        member = MemberInput(id=me.id, role="gateway", url=me.url, host=socket.gethostname(), pid=me.pid)
        sink = StoreLoadSink(store, member)
        credentials = None
        if defaults.fleet_mtls:  # the certificate this gateway calls replicas with
            folder = home / "tls" / "gateway" if home is not None else None
            credentials = GatewayCredentials(
                store, gateway_identity(me.id), folder, publish=timedelta(seconds=defaults.ca_publish_s)
            )
            stack.callback(Loop("gateway-certificate", credentials.refresh, interval_s=1.0).start().stop)
        routes: RouteSource = StoreRouteSource(store, catalog)
        keys: KeySource = StoreKeySource(store)
        if home is not None:
            routes = SavingRouteSource(routes, saved_routes(home))
            keys = SavingKeySource(keys, saved_keys(home))
        try:
            app = create_app(
                routes,
                settings,
                catalog=catalog,
                load_sink=sink,
                gateway_id=f"{host}:{sock.getsockname()[1]}/{me.pid}",
                keys=keys,
                tracer=None
                if recorder is None
                else GatewayTracer(recorder, logs.request_logger("gateway"), log_sample),
                upstream_tls=credentials.context if credentials is not None else None,
            )
            server = serve(app, settings, me.url, [sock], tls)
        except UserError as e:
            print(f"polycloud gateway: {e}", file=sys.stderr)
            return EXIT_USAGE
        if not server.started:
            return EXIT_STARTUP
        leave_quietly(sink)
    log.info("gateway stopped")
    return 0


def request_log_sample(text: str) -> float:
    """`POLYCLOUD_REQUEST_LOG_SAMPLE`: the share of successful requests logged (default 0.01; errors
    are always logged).

    Raises:
        UserError: Not a number in [0, 1].
    """
    if not text.strip():
        return 0.01
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise UserError(f"POLYCLOUD_REQUEST_LOG_SAMPLE must be a number in [0, 1], not {text!r}")
    return value
