"""`polycloud server` refuses what would split the fleet: a second server on one SQLite file, a server on
PostgreSQL without the shared master key, a database no one initialised. Each says what to do."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.e2e.conftest import POLYCLOUD, free_port
from tests.e2e.roles import Roles, drop_schema, fresh_schema_url


def _server(env: dict[str, str], root: Path, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `polycloud server` expecting it to refuse (exit by itself)."""
    return subprocess.run(
        [str(POLYCLOUD), "server"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_a_second_server_on_one_sqlite_file_refuses(tmp_path: Path) -> None:
    roles = Roles(tmp_path, f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    try:
        assert roles.cli("server", "init").rc == 0
        first = roles.start_server("srv-a")
        roles.wait_healthy(first, "/api/v1/health")
        second = _server(roles.env(POLYCLOUD_API_ADDR=f"127.0.0.1:{free_port()}"), tmp_path)
        assert second.returncode == 1 and "Traceback" not in second.stdout + second.stderr
        assert "SQLite allows one server" in second.stderr and "PostgreSQL" in second.stderr
    finally:
        leftovers = [p for p in roles.close() if "polycloud.serving" not in p]
    assert not leftovers


@pytest.mark.postgres
def test_a_server_on_postgresql_needs_an_initialised_database_and_the_master_key(tmp_path: Path) -> None:
    url, schema = fresh_schema_url()
    roles = Roles(tmp_path, url)
    try:
        uninitialised = _server(roles.env(POLYCLOUD_API_ADDR=f"127.0.0.1:{free_port()}"), tmp_path)
        assert uninitialised.returncode == 1 and "polycloud server init" in uninitialised.stderr
        roles.init()
        keyless = roles.env(POLYCLOUD_API_ADDR=f"127.0.0.1:{free_port()}")
        del keyless["POLYCLOUD_MASTER_KEY"]
        refused = _server(keyless, tmp_path)
        assert refused.returncode == 1 and "POLYCLOUD_MASTER_KEY is required" in refused.stderr
        assert "Traceback" not in refused.stdout + refused.stderr
    finally:
        roles.close()
        drop_schema(schema)
