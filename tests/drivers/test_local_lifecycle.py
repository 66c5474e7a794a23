"""End-to-end tests of the local driver's replica lifecycle: real processes, real HTTP."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from polycloud.drivers.base import ReplicaStatus
from polycloud.drivers.local import LocalDriver, list_all_replicas, stop_all_replicas

from .support import fake_python, home_processes, infer, make_spec, status_of, wait_state, wait_until

pytestmark = pytest.mark.e2e

MakeDriver = Callable[..., LocalDriver]


def _gone(driver: LocalDriver, replica_id: str) -> bool:
    return status_of(driver, replica_id) is None


def test_start_serve_adopt_and_stop(make_driver: MakeDriver, model: Path, home: Path) -> None:
    driver = make_driver()
    spec = make_spec(model, env={"SVC_API_KEY": "s3cr3t-value"})

    began = time.monotonic()
    first = driver.start_replica(spec)
    assert time.monotonic() - began < 1.0  # no readiness wait
    assert first.state == "starting" and first.pid is not None and first.endpoint is not None
    again = driver.start_replica(spec)  # idempotent: the same process
    assert again.pid == first.pid and len(home_processes(home)) == 1

    ready = wait_state(driver, spec.id, "ready")
    assert (ready.pid, ready.endpoint, ready.role, ready.revision) == (first.pid, first.endpoint, "active", 1)
    response = infer(ready.endpoint or "", "svc")
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [4.0, 6.0]

    environ = Path(f"/proc/{ready.pid}/environ").read_bytes().split(b"\0")
    assert b"SVC_API_KEY=s3cr3t-value" in environ  # secrets arrive through the environment ...
    assert not any("s3cr3t" in arg for arg in psutil.Process(ready.pid).cmdline())  # ... never argv

    other = make_driver()  # a second driver object sees exactly what runs, with its metadata
    assert [(s.id, s.pid, s.role, s.spec_hash) for s in other.list_replicas()] == [
        (spec.id, ready.pid, "active", "h1")
    ]
    assert [s.id for s in list_all_replicas(home)] == [spec.id]

    began = time.monotonic()
    other.stop_replica(spec.id, grace_s=10.0)
    assert time.monotonic() - began < 1.0
    wait_until(lambda: _gone(driver, spec.id), 9.0, "the replica to exit on SIGTERM")
    assert ready.pid is not None and not psutil.pid_exists(ready.pid)  # exited and reaped
    driver.stop_replica(spec.id)  # idempotent
    assert driver.list_replicas() == []


_CONTROL_PLANE = """
import sys
from pathlib import Path
from polycloud.drivers.base import ReplicaSpec
from polycloud.drivers.local import LocalDriver
home, model, python = sys.argv[1:4]
driver = LocalDriver("local-a", Path(home), python=python)
status = driver.start_replica(ReplicaSpec(id="svc-a-0", service="svc", cluster="local-a", revision=2,
                                          role="standby", spec_hash="h2", model_path=model))
print(status.pid, flush=True)
sys.stdin.read()
"""


def test_replicas_survive_a_crashed_control_plane(make_driver: MakeDriver, model: Path, home: Path) -> None:
    control = subprocess.Popen(
        [sys.executable, "-c", _CONTROL_PLANE, str(home), str(model), sys.executable],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert control.stdout is not None
        pid = int(control.stdout.readline())
    finally:
        control.kill()  # SIGKILL: the control plane crashes, its replica lives on
        control.wait()
    driver = make_driver()
    adopted = wait_state(driver, "svc-a-0", "ready")
    assert (adopted.pid, adopted.role, adopted.revision, adopted.spec_hash) == (pid, "standby", 2, "h2")
    assert infer(adopted.endpoint or "", "svc").status_code == 200
    driver.stop_replica("svc-a-0", grace_s=5.0)
    wait_until(lambda: _gone(driver, "svc-a-0"), 8.0, "the adopted replica to stop")
    assert not any(p.pid == pid for p in home_processes(home))


def test_a_bad_model_fails_with_the_servers_message(make_driver: MakeDriver, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model")
    driver = make_driver()
    driver.start_replica(make_spec(bad, "bad-0"))
    failed = wait_state(driver, "bad-0", "failed")
    assert "exit status 2" in failed.message
    server_line = failed.message.removesuffix(" (exit status 2)")
    assert server_line and server_line in (driver.home / "logs" / "bad-0.log").read_text()
    assert wait_state(make_driver(), "bad-0", "failed").message == failed.message  # seen by all
    driver.stop_replica("bad-0")  # acknowledges the failure
    assert driver.list_replicas() == []


def test_stop_escalates_to_sigkill_after_the_grace(
    make_driver: MakeDriver, model: Path, tmp_path: Path
) -> None:
    driver = LocalDriver("local-a", make_driver().home, python=fake_python(tmp_path, ignore_sigterm=True))
    try:
        pid = driver.start_replica(make_spec(model)).pid
        wait_until(lambda: status_of(driver, "svc-a-0"), 5.0, "the stubborn replica to be listed")
        began = time.monotonic()
        driver.stop_replica("svc-a-0", grace_s=0.5)
        assert time.monotonic() - began < 0.5
        status = status_of(driver, "svc-a-0")
        assert status is not None and status.state == "stopping"  # SIGTERM is ignored
        wait_until(lambda: _gone(driver, "svc-a-0"), 5.0, "SIGKILL after the grace")
        assert time.monotonic() - began >= 0.45
        assert pid is not None
        wait_until(lambda: not psutil.pid_exists(pid), 2.0, "the child to be reaped")  # no zombie left
    finally:
        driver.close()


def test_concurrent_starts_get_distinct_ports_and_one_process_per_id(
    make_driver: MakeDriver, model: Path, home: Path, tmp_path: Path
) -> None:
    sleepy = fake_python(tmp_path, ignore_sigterm=False)
    drivers = [LocalDriver("local-a", home, python=sleepy) for _ in range(2)]
    results: list[ReplicaStatus] = []
    lock = threading.Lock()

    def start(driver: LocalDriver, replica_id: str) -> None:
        status = driver.start_replica(make_spec(model, replica_id))
        with lock:
            results.append(status)

    ids = [f"svc-a-{i}" for i in range(6)] + ["svc-a-0"] * 4  # four extra starts of one id
    threads = [threading.Thread(target=start, args=(drivers[i % 2], rid)) for i, rid in enumerate(ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        listed = drivers[0].list_replicas()
        assert sorted(s.id for s in listed) == sorted(set(ids))
        ports = {s.endpoint for s in listed}
        assert len(ports) == 6  # no two replicas share a port
        assert {s.pid for s in results if s.id == "svc-a-0"} == {
            next(s.pid for s in listed if s.id == "svc-a-0")
        }
        assert len(home_processes(home)) == 6
    finally:
        for driver in drivers:
            driver.close()


def test_stop_all_replicas_leaves_no_process(
    make_driver: MakeDriver, model: Path, home: Path, tmp_path: Path
) -> None:
    real = make_driver("local-a")
    real.start_replica(make_spec(model, "svc-a-0"))
    stubborn = LocalDriver("local-b", home, python=fake_python(tmp_path, ignore_sigterm=True))
    try:
        for i in range(2):
            stubborn.start_replica(make_spec(model, f"svc-b-{i}", "local-b"))
        wait_state(real, "svc-a-0", "ready")
        stubborn.stop_replica("svc-b-1", grace_s=30.0)  # a stop in progress is finished too
        assert len(home_processes(home)) == 3

        began = time.monotonic()
        assert stop_all_replicas(home, grace_s=1.0) == 3
        assert time.monotonic() - began < 5.0
        assert home_processes(home) == []
        assert real.list_replicas() == [] and stubborn.list_replicas() == []
        assert list_all_replicas(home) == []
        assert stop_all_replicas(home) == 0
    finally:
        stubborn.close()
