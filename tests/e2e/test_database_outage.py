"""The state database stops under load: gateways keep serving from what they know, a gateway restarted
during the outage serves from its on-disk copy, `apply` fails naming the database, and everything
resumes when the database returns. The database is a private PostgreSQL this test starts and stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.e2e.conftest import eventually, free_port
from tests.e2e.fleets import Fleet, ServiceDecl
from tests.e2e.roles import Roles
from tests.e2e.traffic import ClientLoad

pytestmark = pytest.mark.postgres


@dataclass
class PrivatePostgres:
    """A PostgreSQL instance of the test's own (initdb + pg_ctl), trust auth on 127.0.0.1."""

    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent}"
        log = str(self.data.parent / "pg.log")
        run(["pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"])


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL's server refuses to run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def run(command: list[str], check: bool = True) -> None:
    done = subprocess.run(as_postgres(command), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 or not check, f"{command}: {done.stdout}{done.stderr}"


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    initdb = shutil.which("initdb")
    assert initdb, "initdb (PostgreSQL's server binaries) is needed for the database-outage test"
    # Not under tmp_path: pytest's folders are private to root, and the server runs as `postgres`.
    folder = Path(tempfile.mkdtemp(prefix="polycloud-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    instance = PrivatePostgres(folder / "data", free_port())
    run([initdb, "-D", str(instance.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    instance.start()
    try:
        yield instance
    finally:
        run(["pg_ctl", "-D", str(instance.data), "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def roles(tmp_path: Path, postgres: PrivatePostgres) -> Iterator[Roles]:
    fleet_roles = Roles(tmp_path, postgres.url)
    try:
        yield fleet_roles
    finally:
        leftovers = [p for p in fleet_roles.close() if "polycloud.serving" not in p]
    assert not leftovers, f"control-plane processes left running: {leftovers}"


def test_gateways_serve_through_a_database_outage(
    roles: Roles, postgres: PrivatePostgres, tmp_path: Path, model: Path
) -> None:
    fleet = Fleet(tmp_path, model, ("acme", "borealis"), (ServiceDecl("alpha", ("acme", "borealis"), 1),))
    roles.init()
    server = roles.start_server("srv-a")
    steady, restarted = roles.start_gateway("gw-1"), roles.start_gateway("gw-2")
    for role, path in (
        (server, "/api/v1/health"),
        (steady, "/v2/health/live"),
        (restarted, "/v2/health/live"),
    ):
        roles.wait_healthy(role, path)
    assert roles.cli("apply", fleet.write(), "--yes", server=server).rc == 0

    with ClientLoad([steady.url], "alpha", clients=2) as through_steady:
        with ClientLoad([restarted.url], "alpha", clients=2) as before_restart:
            eventually(lambda: before_restart.count() > 50 and through_steady.count() > 50, "load to flow")
            postgres.stop()
            stopped_at = time.monotonic()
            # apply fails at once, clearly, naming the database.
            result = roles.cli(
                "apply", fleet.with_env("alpha", COLOR="red").write("v2.yaml"), "--yes", server=server
            )
            assert result.rc == 1 and "Traceback" not in result.stdout + result.stderr
            assert f"127.0.0.1:{postgres.port}" in result.stderr, result.stderr
            through_steady.wait_for(100)
        # A gateway restarted while the database is down serves at once from its on-disk copy.
        port = int(restarted.url.rsplit(":", 1)[1])
        restarted.popen.terminate()
        restarted.popen.wait(30)
        again = roles.start_gateway("gw-2", port=port)
        assert again.home == restarted.home
        started_at = time.monotonic()
        roles.wait_healthy(again, "/v2/health/ready", timeout_s=30)
        with ClientLoad([again.url], "alpha", clients=2) as after_restart:
            after_restart.wait_for(100)
            cold_start_s = time.monotonic() - started_at
            # Serve through at least 5 s of outage, however fast the steps above went.
            time.sleep(max(0.0, 5.0 - (time.monotonic() - stopped_at)))
        postgres.start()
        through_steady.wait_for(50)
    for load in (through_steady, before_restart, after_restart):
        assert not load.failures(), load.describe_failures()
    assert cold_start_s < 20

    # Everything resumes: apply converges, both gateways report in again.
    result = roles.cli(
        "apply", fleet.with_env("alpha", COLOR="green").write("v3.yaml"), "--yes", server=server
    )
    assert result.rc == 0, result
    eventually(lambda: len(roles.status(server)["controlPlane"]["gateways"]) == 2, "both gateways to report")
