"""The gateway role, statically stable: it outlives control planes, and more than one may serve a store.

- SIGKILL of `up` (embedded SQLite home) under client load through the gateway fails no request; the
  next `up` adopts the same gateway and the same replicas (same pids), and restarts the gateway when
  it dies; `down` then stops the gateway even when no control plane runs.
- `polycloud gateway --detach` runs a second gateway, with its own home, against the same store: it
  serves the fleet and both gateways appear in `status`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
from tests.e2e.conftest import Polycloud, _cmdline, home_processes
from tests.e2e.fleets import Fleet, ServiceDecl

pytestmark = pytest.mark.e2e

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
OUTAGE_S = 7.0
"""How long load runs after the kill: the window in which 1,306 of 1,698 requests failed when the
gateway was a child of `up` that died with it."""


class Load:
    """Closed-loop clients sending inference through the gateway until stopped; counts every answer."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = f"{url}/v2/models/alpha/infer"
        self.answers: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=10.0, trust_env=False) as http:
            while not self._stop.is_set():
                try:
                    status = str(http.post(self.url, json=BODY).status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                with self._lock:
                    self.answers[status] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.answers.values())

    def failed(self) -> dict[str, int]:
        with self._lock:
            return {k: n for k, n in self.answers.items() if k != "200"}


def gateway_pids(home: Path) -> list[int]:
    """The live gateway processes of `home`."""
    return [p.pid for p in home_processes(home) if "polycloud.gateway" in _cmdline(p)]


def run_file(home: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((home / "gateway.json").read_text())
    return data


@pytest.fixture
def alpha(tmp_path: Path, model: Path) -> Fleet:
    """One active-active service on two private sites, one replica each."""
    return Fleet(tmp_path, model, ("acme", "borealis"), (ServiceDecl("alpha", ("acme", "borealis"), 1),))


def test_sigkill_of_up_under_load_fails_no_request_and_the_next_up_adopts_everything(
    polycloud: Polycloud, alpha: Fleet
) -> None:
    polycloud.ok("apply", alpha.write(), "--yes")  # starts `up` in the background
    status = polycloud.expect_exactly(alpha)
    [gateway] = gateway_pids(polycloud.home)
    assert run_file(polycloud.home)["pid"] == gateway
    replicas = {p.replica_id: p.pid for p in polycloud.replica_processes()}
    with Load(status["gateway"]["url"]) as load:
        polycloud.eventually(lambda: load.total >= 200, "load through the gateway")
        before = load.total
        polycloud.kill_control_plane()
        time.sleep(OUTAGE_S)
        during = load.total - before
        assert gateway_pids(polycloud.home) == [gateway] and polycloud.control_plane_pid() is None
        polycloud.ok("up", "--detach")  # a later `up` adopts the gateway and the replicas
        after = polycloud.expect_exactly(alpha)
        assert gateway_pids(polycloud.home) == [gateway]
        assert {p.replica_id: p.pid for p in polycloud.replica_processes()} == replicas
        listed = polycloud.eventually(lambda: polycloud.api_status()["controlPlane"]["gateways"], "members")
        assert [g["pid"] for g in listed] == [gateway], listed
        assert after["gateway"]["url"] == status["gateway"]["url"]
    print(
        f"SIGKILL of up under load: {during} requests in the {OUTAGE_S:.0f} s after the kill, "
        f"{load.total} in all, failed: {load.failed() or 0}"
    )
    assert load.failed() == {} and during > 100

    polycloud.kill(gateway)  # the adopted gateway dies: `up` starts another, which serves its copy
    [restarted] = polycloud.eventually(lambda: gateway_pids(polycloud.home), "up to restart the gateway")
    with httpx.Client(timeout=10.0, trust_env=False) as http:
        url = f"{status['gateway']['url']}/v2/models/alpha/infer"

        def serves() -> bool:
            try:
                return http.post(url, json=BODY).status_code == 200
            except httpx.TransportError:
                return False

        polycloud.eventually(serves, "the restarted gateway to serve")

    polycloud.kill_control_plane()  # `down` with no control plane still stops the home's gateway
    polycloud.ok("down")
    assert gateway_pids(polycloud.home) == [] and polycloud.replica_processes() == []
    assert not psutil.pid_exists(restarted) or psutil.Process(restarted).status() == psutil.STATUS_ZOMBIE
    assert not (polycloud.home / "gateway.json").exists()


def test_a_second_gateway_with_its_own_home_serves_the_same_store(
    polycloud: Polycloud, alpha: Fleet, tmp_path: Path
) -> None:
    assert "Example: " in polycloud.ok("gateway", "--help").stdout
    polycloud.ok("apply", alpha.write(), "--yes")
    polycloud.expect_exactly(alpha)
    second = Polycloud(tmp_path / "second")
    second.root.mkdir()
    second.env["POLYCLOUD_DATABASE_URL"] = f"sqlite:///{polycloud.home / 'state.db'}"
    try:
        started = second.ok("gateway", "--detach")
        assert "gateway running for" in started.stdout, started.stdout
        again = second.ok("gateway", "--detach")
        assert "already running" in again.stdout
        info = run_file(second.home)
        with httpx.Client(timeout=10.0, trust_env=False) as http:

            def served() -> bool:
                answer = http.post(f"{info['url']}/v2/models/alpha/infer", json=BODY)
                return answer.status_code == 200

            polycloud.eventually(served, "the second gateway to serve alpha")

        def both() -> list[dict[str, object]] | None:
            listed: list[dict[str, object]] = polycloud.api_status()["controlPlane"]["gateways"]
            return listed if len(listed) == 2 else None

        gateways = polycloud.eventually(both, "both gateways in status")
        assert sorted(str(g["url"]) for g in gateways) == sorted(
            [str(info["url"]), str(run_file(polycloud.home)["url"])]
        )
    finally:
        errors = second.close()  # `down` in its home stops its gateway; nothing may be left
    assert errors == [], errors
