"""The gateway process: `python -m polycloud.gateway --addr HOST:PORT --database-url URL [--region P/R]`.

The control plane starts it as a child process. It reads routes from the state store at
`--database-url` (and reports its load there every second), serves on `--addr` (or on an inherited
listening socket, `--fd`) with uvicorn, and on SIGTERM or SIGINT drains: readiness turns 503, the
listener closes, requests in flight may finish for `--drain-timeout` seconds; then it exits 0. Exit
status 1: bad arguments or an unusable database; 3: the application did not start.

Unset options come from the polycloud settings (`POLYCLOUD_GATEWAY_ADDR`, `POLYCLOUD_DATABASE_URL`,
`POLYCLOUD_GATEWAY_REGION`), read here, at the process edge, only.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from polycloud.catalog import load_catalog
from polycloud.errors import UserError
from polycloud.gateway.app import GatewayApp, create_app
from polycloud.gateway.keystore import StoreKeySource
from polycloud.gateway.policies import routing_policies
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.sourcing import StoreLoadSink, StoreRouteSource
from polycloud.gateway.tracing import GatewayTracer
from polycloud.gateway.wholewrites import WholeWritesProtocol
from polycloud.settings import Settings
from polycloud.state import Store
from polycloud.telemetry import logs, tracing
from polycloud.telemetry.recording import SpanRecorder

log = logging.getLogger("polycloud.gateway")

EXIT_USAGE = 1
EXIT_STARTUP = 3
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
    host: str,
    port: int,
    sockets: list[socket.socket] | None,
    tls: tuple[Path, Path] | None = None,
) -> DrainingServer:
    """Serve `app` with uvicorn until a stop signal has been handled; returns the stopped server."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
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
    where = f"fd {sockets[0].fileno()}" if sockets else f"{host}:{port}"
    log.info("gateway on %s (region %s, policy %s)", where, settings.region, settings.routing_policy)
    gc.collect()
    gc.freeze()  # what startup built lives as long as the process: keep it out of every collection
    server.run(sockets=sockets)
    return server


def main(argv: list[str] | None = None) -> int:
    """Run the gateway until SIGTERM or SIGINT; returns the exit status."""
    defaults = Settings()
    args = parse_args(argv, defaults)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("polycloud").setLevel(args.log_level.upper())
    try:
        host, port = split_addr(args.addr)
        log_sample = request_log_sample(os.environ.get("POLYCLOUD_REQUEST_LOG_SAMPLE", ""))
        request_log = logs.request_logger("gateway")
        settings = GatewaySettings(
            region=args.region or None,
            routing_policy=args.routing_policy,
            health_interval_s=args.health_interval,
            default_timeout_s=args.timeout,
            max_in_flight=args.max_in_flight,
            drain_timeout_s=args.drain_timeout,
        )
        tls = defaults.tls
        store = Store.open(args.database_url or defaults.resolved_database_url)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        print(f"polycloud gateway: {problems}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as e:
        print(f"polycloud gateway: {e}", file=sys.stderr)
        return EXIT_USAGE
    recorder = None
    if not tracing.disabled(os.environ):
        exporter = tracing.make_exporter("gateway", defaults.resolved_home, os.environ)
        recorder = SpanRecorder(exporter, "polycloud-gateway")
        logs.configure(sys.stderr, component="gateway")
    try:
        sockets = None if args.fd is None else [inherited_socket(args.fd)]
        catalog = load_catalog()
        app = create_app(
            StoreRouteSource(store, catalog),
            settings,
            catalog=catalog,
            load_sink=StoreLoadSink(store),
            gateway_id=f"{args.addr}/{os.getpid()}",
            keys=StoreKeySource(store),
            tracer=None if recorder is None else GatewayTracer(recorder, request_log, log_sample),
        )
        server = serve(app, settings, host, port, sockets, tls)
    except UserError as e:
        print(f"polycloud gateway: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
        if recorder is not None:
            recorder.shutdown()  # exports the spans still queued
    if not server.started:
        return EXIT_STARTUP
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
