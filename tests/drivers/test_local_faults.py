"""End-to-end tests of fault injection on the local driver: real replicas, real HTTP, timed loosely."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from polycloud.drivers.base import Fault
from polycloud.drivers.local import LocalDriver
from polycloud.errors import TransientError

from .support import fake_python, home_processes, infer, make_spec, status_of, wait_state, wait_until

pytestmark = pytest.mark.e2e

MakeDriver = Callable[..., LocalDriver]


def _infer_seconds(endpoint: str, times: int = 3) -> float:
    """Median wall time of `times` successful inference calls."""
    spent = []
    for _ in range(times):
        began = time.monotonic()
        response = infer(endpoint, "svc")
        spent.append(time.monotonic() - began)
        assert response.status_code == 200, response.text
    return statistics.median(spent)


def _faults_of(endpoint: str) -> dict[str, float]:
    response = httpx.get(f"{endpoint}/_polycloud/faults", timeout=5.0, trust_env=False)
    response.raise_for_status()
    data: dict[str, float] = response.json()
    return data


def test_kill_fault_takes_the_replica_out(make_driver: MakeDriver, model: Path) -> None:
    driver = make_driver()
    driver.start_replica(make_spec(model))
    pid = wait_state(driver, "svc-a-0", "ready").pid
    assert pid is not None

    driver.inject(Fault(kind="kill", replica_id="svc-a-0"))
    status = status_of(driver, "svc-a-0")  # immediately: failed (or already absent), never ready
    assert status is None or status.state == "failed"
    assert status is None or "injected fault" in status.message
    assert not psutil.pid_exists(pid)  # reaped: no zombie either
    driver.stop_replica("svc-a-0")
    assert driver.list_replicas() == []


def test_down_fault_blocks_starts_until_cleared(make_driver: MakeDriver, model: Path, tmp_path: Path) -> None:
    home = make_driver().home
    sleepy = fake_python(tmp_path, ignore_sigterm=False)
    driver, other = (LocalDriver("local-a", home, python=sleepy) for _ in range(2))
    neighbour = LocalDriver("local-b", home, python=sleepy)
    try:
        for i in range(2):
            driver.start_replica(make_spec(model, f"svc-a-{i}"))
        neighbour.start_replica(make_spec(model, "svc-b-0", "local-b"))

        driver.inject(Fault(kind="down"))
        assert {s.state for s in driver.list_replicas()} == {"failed"}
        assert len(home_processes(home)) == 1  # the other cluster is untouched
        with pytest.raises(TransientError, match="cluster local-a is down"):
            driver.start_replica(make_spec(model, "svc-a-5"))
        with pytest.raises(TransientError):
            other.start_replica(make_spec(model, "svc-a-5"))  # the fault is shared through the home

        other.clear_faults()
        for i in range(2):
            driver.stop_replica(f"svc-a-{i}")  # acknowledge the failures
        assert driver.start_replica(make_spec(model, "svc-a-5")).state == "starting"
        assert [s.id for s in driver.list_replicas()] == ["svc-a-5"]
    finally:
        for d in (driver, other, neighbour):
            d.close()


def test_latency_fault_delays_running_and_later_replicas(make_driver: MakeDriver, model: Path) -> None:
    driver = make_driver()
    driver.start_replica(make_spec(model, "svc-a-0", delay_ms=20.0))
    endpoint = wait_state(driver, "svc-a-0", "ready").endpoint or ""
    before = _infer_seconds(endpoint)

    driver.inject(Fault(kind="latency", delay_ms=400.0))
    assert _infer_seconds(endpoint) >= before + 0.3
    faults = _faults_of(endpoint)  # the injected delay comes on top of the spec's own
    assert faults["delayMs"] == pytest.approx(400.0) and faults["baseDelayMs"] == pytest.approx(20.0)

    driver.start_replica(make_spec(model, "svc-a-1"))  # started later: gets the latency too
    later = wait_state(make_driver(), "svc-a-1", "ready").endpoint or ""
    assert _faults_of(later)["delayMs"] == pytest.approx(400.0)

    driver.clear_faults()
    assert _faults_of(endpoint)["delayMs"] == _faults_of(later)["delayMs"] == 0.0
    assert _infer_seconds(endpoint) < before + 0.2


def test_error_fault_makes_inference_fail(make_driver: MakeDriver, model: Path) -> None:
    driver = make_driver()
    driver.start_replica(make_spec(model))
    endpoint = wait_state(driver, "svc-a-0", "ready").endpoint or ""
    assert infer(endpoint, "svc").status_code == 200

    make_driver().inject(Fault(kind="errors", error_rate=1.0))  # another driver object: shared state
    assert [infer(endpoint, "svc").status_code for _ in range(3)] == [500, 500, 500]
    assert wait_state(driver, "svc-a-0", "ready")  # health is unaffected

    driver.clear_faults()
    wait_until(lambda: infer(endpoint, "svc").status_code == 200, 5.0, "errors to stop")


def _stopped(pid: int | None) -> bool:
    return pid is not None and psutil.Process(pid).status() == psutil.STATUS_STOPPED


def test_freeze_fault_stops_replicas_that_keep_their_sockets_until_cleared(
    make_driver: MakeDriver, model: Path
) -> None:
    driver = make_driver()
    driver.start_replica(make_spec(model))
    ready = wait_state(driver, "svc-a-0", "ready")
    endpoint = ready.endpoint or ""

    make_driver().inject(Fault(kind="freeze"))  # another driver object: shared state
    wait_until(lambda: _stopped(ready.pid), 5.0, "the replica to be stopped")  # a signal lands async
    with pytest.raises(httpx.ReadTimeout):  # the connection opens; no answer ever comes
        infer(endpoint, "svc", timeout_s=0.5)
    frozen = status_of(driver, "svc-a-0")  # neither failed nor replaced: the same process, still ready
    assert frozen is not None and (frozen.state, frozen.pid) == ("ready", ready.pid)
    assert "frozen" in frozen.message

    later = driver.start_replica(make_spec(model, "svc-a-1"))  # a replica started meanwhile: frozen too
    assert wait_until(lambda: _stopped(later.pid), 5.0, "the new replica to be stopped")
    starting = status_of(driver, "svc-a-1")
    assert starting is not None and starting.state == "starting"

    driver.clear_faults()
    wait_until(lambda: not _stopped(ready.pid) and not _stopped(later.pid), 5.0, "both to resume")
    assert infer(endpoint, "svc").status_code == 200
    assert wait_state(driver, "svc-a-1", "ready").pid == later.pid
    assert all(s.message == "" for s in driver.list_replicas())


def test_a_replica_stopped_while_frozen_exits_gracefully(make_driver: MakeDriver, model: Path) -> None:
    driver = make_driver()
    driver.start_replica(make_spec(model))
    pid = wait_state(driver, "svc-a-0", "ready").pid
    driver.inject(Fault(kind="freeze"))

    driver.stop_replica("svc-a-0", grace_s=30.0)  # resumed with its SIGTERM: no 30 s wait for SIGKILL

    assert wait_until(lambda: pid is not None and not psutil.pid_exists(pid), 10.0, "the replica to exit")
    driver.clear_faults()
