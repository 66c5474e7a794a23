"""A fleet of control-plane roles as separate processes: `polycloud server`s sharing one home and one
PostgreSQL database, and `polycloud gateway`s with homes of their own.

Servers on one machine share the home because the local driver's replicas belong to it (a new leader
must find what the old one started); gateways each keep their own home (their on-disk route copy).
Everything started here is killed at `close()`, replicas included, and the database schema dropped.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from tests.e2e.conftest import POLYCLOUD, CliResult, eventually, free_port, home_processes, replica_processes

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def fresh_schema_url(admin_url: str = ADMIN_URL) -> tuple[str, str]:
    """(SQLAlchemy URL, schema) of a new, empty schema in the test database."""
    schema = f"pc_ha_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    base = admin_url.replace("postgresql://", "postgresql+psycopg://")
    return f"{base}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str, admin_url: str = ADMIN_URL) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@dataclass
class Role:
    """One running `polycloud server` or `polycloud gateway`."""

    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log: Path
    home: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        try:
            return psutil.Process(self.pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        except psutil.NoSuchProcess:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Roles:
    """Servers and gateways of one database; see the module docstring."""

    root: Path
    database_url: str
    master_key: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    roles: list[Role] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return (self.root / "home").resolve()

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCLOUD_")}
        env |= {
            "POLYCLOUD_HOME": str(self.home),
            "POLYCLOUD_DATABASE_URL": self.database_url,
            "POLYCLOUD_MASTER_KEY": self.master_key,
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        return env | overrides

    def cli(self, *args: str | Path, server: Role | None = None, timeout_s: float = 180.0) -> CliResult:
        """`polycloud ARGS` on this machine, against `server` when given."""
        command = [str(POLYCLOUD), *(["--server", server.url] if server else []), *map(str, args)]
        done = subprocess.run(
            command,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=self.root,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def init(self) -> str:
        """`polycloud server init`; returns the admin token."""
        result = self.cli("server", "init")
        assert result.rc == 0, result
        return (self.home / "admin.token").read_text().strip()

    def _start(self, name: str, args: list[str], url: str, env: dict[str, str], home: Path) -> Role:
        log = self.root / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [str(POLYCLOUD), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
            )
        role = Role(name, url, popen, log, home)
        self.roles.append(role)
        return role

    def start_server(self, name: str, gateway: Role | None = None) -> Role:
        """A server; `gateway` is the global endpoint it names in `status` (drills send load there)."""
        port = free_port()
        env = self.env(POLYCLOUD_API_ADDR=f"127.0.0.1:{port}", POLYCLOUD_SERVER_ID=name)
        if gateway is not None:
            env["POLYCLOUD_GATEWAY_ADDR"] = gateway.url.removeprefix("http://")
        return self._start(name, ["server"], f"http://127.0.0.1:{port}", env, self.home)

    def start_gateway(self, name: str, port: int | None = None) -> Role:
        port = port or free_port()
        home = (self.root / f"home-{name}").resolve()
        env = self.env(POLYCLOUD_HOME=str(home), POLYCLOUD_GATEWAY_ADDR=f"127.0.0.1:{port}")
        return self._start(name, ["gateway"], f"http://127.0.0.1:{port}", env, home)

    def wait_healthy(self, role: Role, path: str, timeout_s: float = 60.0) -> None:
        def answers() -> bool:
            if not role.alive():
                raise AssertionError(f"{role.name} exited:\n{role.output()[-3000:]}")
            try:
                return httpx.get(role.url + path, timeout=1.0, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(answers, f"{role.name} to answer {path}", timeout_s)

    def status(self, server: Role) -> dict[str, Any]:
        token = (self.home / "admin.token").read_text().strip()
        answer = httpx.get(
            f"{server.url}/api/v1/status",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
            trust_env=False,
        )
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    def leader(self, server: Role) -> tuple[str | None, int]:
        plane = self.status(server)["controlPlane"]
        return plane["leader"], int(plane["epoch"])

    def by_name(self, name: str) -> Role:
        return next(r for r in self.roles if r.name == name)

    def close(self) -> list[str]:
        """Kill every role and every replica of the home; returns what was still running unexpectedly."""
        for role in self.roles:
            if role.alive():
                os.kill(role.pid, signal.SIGCONT)
                role.popen.terminate()
        deadline = time.monotonic() + 15
        for role in self.roles:
            try:
                role.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                role.popen.kill()
                role.popen.wait()
        leftovers: list[str] = []
        homes = {self.home, *(r.home for r in self.roles)}
        for home in homes:
            for proc in [*map(_process, replica_processes(home)), *home_processes(home)]:
                if proc is None:
                    continue
                try:
                    command = " ".join(proc.cmdline())
                    proc.kill()
                except psutil.Error:
                    continue  # it was exiting already
                if command:
                    leftovers.append(f"{proc.pid} {command[:120]}")
        return leftovers


def _process(replica: Any) -> psutil.Process | None:
    try:
        return psutil.Process(replica.pid)
    except psutil.Error:
        return None


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among `text`'s lines (structured logs)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found
