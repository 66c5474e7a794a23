"""`polycloud server` and `polycloud server init`: control-plane servers for more than one machine.

`init` prepares a database once: migrations, and the first admin token (printed once, kept in the
home's `admin.token`). `serve` runs one server on an initialised database — the whole API, and the
loops that act while it holds the leader lease — publishing itself in `home/servers/ID.json` so that
the CLI on this machine finds it. Servers never migrate the schema themselves: two versions of
polycloud must not race to change it under each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from polycloud.homefiles import (
    RunInfo,
    exclusive_sqlite,
    remove_runinfo,
    server_runfile,
    write_runinfo,
)
from polycloud.server.assembly import Server, is_shared
from polycloud.server.keys import fleet_keys
from polycloud.server.process import first_token
from polycloud.settings import Settings
from polycloud.state import Store


def init_database(settings: Settings) -> tuple[Path | None, str | None]:
    """Migrate the database and create the first admin token; returns (token file, token) when new.

    Checks the master key against the database's (recording it on first use), so that a typo in
    `POLYCLOUD_MASTER_KEY` fails here rather than at the first server start.

    Raises:
        UserError: The database is unreachable, newer than this polycloud, or the key is missing/wrong.
    """
    home = settings.resolved_home
    with Store.open(settings.resolved_database_url) as store:
        master = settings.master_key.get_secret_value() if settings.master_key else None
        fleet_keys(master, home, store, shared=is_shared(settings.resolved_database_url))
        path = first_token(store, home)
        return path, (path.read_text().strip() if path is not None else None)


class StandaloneServer:
    """One `polycloud server`. `serve()` blocks until SIGINT/SIGTERM or the API's /shutdown."""

    def __init__(self, settings: Settings, *, on_ready: Callable[[RunInfo, str], None]) -> None:
        self.settings = settings
        self.on_ready = on_ready
        self._server: Server | None = None

    def serve(self) -> None:
        settings = self.settings
        home = settings.resolved_home
        with exclusive_sqlite(settings.resolved_database_url):
            store = Store.open(settings.resolved_database_url, migrate=False)
            try:
                self._server = server = Server.build(settings, store)
                runfile = server_runfile(server.id)
                server.start_loops()
                info = RunInfo(os.getpid(), server.endpoints.api_url, server.endpoints.gateway_url)
                write_runinfo(home, info, runfile)
                self.on_ready(info, server.id)
                try:
                    server.serve()
                finally:
                    server.close()
                    remove_runinfo(home, runfile)
            finally:
                store.close()
