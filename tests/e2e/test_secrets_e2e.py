"""Secrets end to end: a planted value reaches the replica's environment and nowhere else.

Every output a user or an API client can see (apply, status, plan, validate, events, history, logs,
secret list, API answers, error messages) and every byte under $POLYCLOUD_HOME (the database and its
WAL, logs, replica records, run files) is searched for the value.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psutil
import pytest
from tests.e2e.conftest import POLYCLOUD, CliResult, Polycloud, home_processes
from tests.e2e.fleets import Fleet, ServiceDecl

pytestmark = pytest.mark.e2e


def secret_set(polycloud: Polycloud, name: str, value: str, *extra: str) -> CliResult:
    """`printf VALUE | polycloud secret set NAME ...`."""
    done = subprocess.run(
        [str(POLYCLOUD), "secret", "set", name, *extra],
        cwd=polycloud.root,
        env=polycloud.env,
        input=value,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def environ(pid: int) -> dict[str, str]:
    """The environment a process was started with (/proc/PID/environ); empty once it has gone."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def replica_pids(polycloud: Polycloud) -> list[int]:
    return [p.pid for p in polycloud.replica_processes()]


def test_a_planted_secret_reaches_the_replica_and_leaks_nowhere(
    polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    value = f"planted-{uuid.uuid4().hex}"
    newer = f"rotated-{uuid.uuid4().hex}"
    outputs: list[str] = []

    def keep(result: CliResult) -> CliResult:
        outputs.extend((result.stdout, result.stderr))
        return result

    created = keep(secret_set(polycloud, "api-key", value))
    assert created.rc == 0, created.stderr
    assert "secret api-key set (version 1)" in created.stdout
    service = ServiceDecl(
        "alpha", ("acme",), replicas=1, env={"COLOR": "blue"}, secrets={"API_KEY": "api-key"}
    )
    fleet = Fleet(tmp_path, model, ("acme",), (service,))
    path = fleet.write()
    keep(polycloud.ok("apply", path, "--yes"))
    status = polycloud.expect_exactly(fleet)

    [pid] = replica_pids(polycloud)
    assert environ(pid)["API_KEY"] == value
    assert environ(pid)["COLOR"] == "blue"

    replica = status["services"][0]["clusters"][0]["replicas"][0]["id"]
    for args in (
        ("status",),
        ("status", "--json"),
        ("plan", path, "--json"),
        ("validate", path),
        ("events", "--json"),
        ("history", "alpha"),
        ("logs", replica),
        ("secret", "list"),
        ("secret", "list", "--json"),
        ("secret", "rotate-master"),
        ("apply", path, "--yes"),
    ):
        keep(polycloud.ok(*args))
    assert environ(pid)["API_KEY"] == value  # rotating the master key does not touch running replicas
    keep(polycloud.cli("secret", "delete", "no-such-secret"))
    keep(secret_set(polycloud, "bad name!", value))
    keep(secret_set(polycloud, "api-key", value + "\0"))
    api = polycloud.api()
    for url in ("/status", "/events", "/workloads/alpha/history", "/secrets", "/keys", "/openapi.json"):
        outputs.append(api.get(url).text)
    outputs.append(api.put("/secrets/bad%20name", json={"value": value}).text)
    outputs.append(api.put("/secrets/x", json={"value": 42, "echo": value}).text)

    # A new value rolls the replica; the old and the new value stay out of every output and file.
    keep(secret_set(polycloud, "api-key", newer))
    polycloud.eventually(
        lambda: (pids := replica_pids(polycloud)) and environ(pids[0]).get("API_KEY") == newer,
        "the replica restarted with the new value",
    )
    keep(polycloud.ok("status"))
    keep(polycloud.ok("events"))

    for planted in (value, newer):
        leaks = [o for o in outputs if planted in o]
        assert leaks == [], f"the value appears in an output: {leaks[0][:300]}"
        assert files_holding(polycloud.home, planted.encode()) == []
        for proc in home_processes(polycloud.home):
            try:
                assert planted not in " ".join(proc.cmdline())
            except psutil.NoSuchProcess:
                continue


def test_a_service_naming_a_missing_secret_is_blocked_with_a_reason(
    polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    service = ServiceDecl("alpha", ("acme",), replicas=1, secrets={"API_KEY": "never-set"})
    fleet = Fleet(tmp_path, model, ("acme",), (service,))
    rc, out, err = polycloud.cli("apply", fleet.write(), "--yes")
    assert rc == 1
    assert "secret 'never-set' does not exist" in err
    assert "Traceback" not in out + err
    assert polycloud.replica_processes() == []
    assert secret_set(polycloud, "never-set", "now-it-is").rc == 0
    polycloud.expect_exactly(fleet)
