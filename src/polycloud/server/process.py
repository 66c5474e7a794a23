"""`polycloud up`: the embedded control plane of one home — a server, its gateway, one command.

The server (`assembly.Server`: the API and the loops, gated on the leader lease) runs in this process;
the gateway runs as a process of its own that outlives this one. The home's lock makes `up` the only
control plane of its home on this machine, and a SQLite database's lock makes it the only server of
that database (SQLite is one machine's; several servers need PostgreSQL).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from polycloud.homefiles import (
    RunInfo,
    ensure_home,
    exclusive,
    exclusive_sqlite,
    remove_runinfo,
    write_runinfo,
    write_token,
)
from polycloud.server.assembly import Server
from polycloud.server.children import GatewayProcess
from polycloud.settings import Settings
from polycloud.state import Store

GATEWAY_START_TIMEOUT_S = 15.0


def wait_listening(addr: str, timeout_s: float) -> bool:
    """Wait until something accepts connections at `addr` (the gateway child), at most `timeout_s`."""
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host or "127.0.0.1", int(port))) == 0:
                return True
        time.sleep(0.05)
    return False


@contextmanager
def one_server(settings: Settings) -> Iterator[None]:
    """Hold the home's lock, and the SQLite database's (SQLite allows one server), while running."""
    with ExitStack() as stack:
        stack.enter_context(exclusive(settings.resolved_home))
        stack.enter_context(exclusive_sqlite(settings.resolved_database_url))
        yield


def first_token(store: Store, home: Path) -> Path | None:
    """On the first start of a database, create an admin token (race-free) and keep it in a 0600 file."""
    ensure_home(home)  # before the token exists: it is shown only once
    created = store.create_first_admin_token()
    return None if created is None else write_token(home, created)


class ControlPlane:
    """One control plane. `serve()` blocks until shutdown (SIGINT/SIGTERM or the API's /shutdown)."""

    def __init__(self, settings: Settings, *, on_ready: Callable[[RunInfo, Path | None], None]) -> None:
        self.settings = settings
        self.home = settings.resolved_home
        self.on_ready = on_ready
        self._server: Server | None = None

    def serve(self) -> None:
        with one_server(self.settings):
            self._serve_locked()

    def _serve_locked(self) -> None:
        settings, home = self.settings, self.home
        store = Store.open(settings.resolved_database_url)
        try:
            token_path = first_token(store, home)
            gateway = GatewayProcess(
                addr=settings.gateway_addr,
                database_url=settings.resolved_database_url,
                region=settings.gateway_region,
                home=home,
                log=settings.logs_dir / "gateway.log",
            )
            gateway.claim()  # adopts the home's gateway; fails early if another program has the address
            self._server = server = Server.build(settings, store)
            server.start_loops()
            gateway.start()
            wait_listening(settings.gateway_addr, GATEWAY_START_TIMEOUT_S)
            info = RunInfo(
                pid=os.getpid(), api_url=server.endpoints.api_url, gateway_url=server.endpoints.gateway_url
            )
            write_runinfo(home, info)
            self.on_ready(info, token_path)
            try:
                server.serve()
            finally:
                server.close()
                gateway.stop(terminate=server.stop_replicas)  # `down` stops it; a crash or Ctrl-C does not
                remove_runinfo(home)
        finally:
            store.close()

    def request_shutdown(self, stop_replicas: bool = True) -> None:
        if self._server is not None:
            self._server.request_shutdown(stop_replicas)
