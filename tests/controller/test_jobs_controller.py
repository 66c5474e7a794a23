"""The job controller with a real store, real local job processes and a real training script.

The script (`train_sgd.py`) is stopped at exact steps through flag files, so preemptions land where the
test wants them — including in the middle of a checkpoint write — without sleeping to synchronise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support import wait_until

from polycloud.catalog import load_catalog
from polycloud.controller.jobs import JobController
from polycloud.drivers.local.jobs import scan_jobs
from polycloud.drivers.registry import create_driver
from polycloud.services.applying import FleetService
from polycloud.state import Store
from polycloud.state.job_records import JobRunRecord

sys.path.insert(0, str(Path(__file__).parent))
import train_sgd  # the job's own module, for its reference weights

SCRIPT = Path(__file__).with_name("train_sgd.py")
EGRESS_USD_PER_GB = 0.09
SITES = {"spot-a": (0.40, 0.10), "spot-b": (0.45, 0.12), "ondemand-c": (0.50, None)}
"""Cluster → (on-demand, spot) price of its one instance type."""


def cluster(name: str, index: int) -> dict[str, Any]:
    hourly, spot = SITES[name]
    instance: dict[str, Any] = {"name": "cpu", "vcpus": 4, "memoryGiB": 16, "hourlyUSD": hourly}
    if spot is not None:
        instance["spotHourlyUSD"] = spot
    spec = {
        "provider": name,
        "region": "dc1",
        "driver": {"type": "local"},
        "location": {"lat": 40.0 + index, "lon": -75.0},
        "instances": [instance],
        "network": {"internetEgressUSDPerGB": EGRESS_USD_PER_GB},
    }
    return {"apiVersion": "polycloud/v1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec}


def job(
    name: str, control: Path, *, steps: int, every: int, strategy: str, max_restarts: int
) -> dict[str, Any]:
    command = ["python", str(SCRIPT), "--steps", str(steps), "--every", str(every), "--control", str(control)]
    spec = {
        "resources": {"vcpus": 1},
        "nodes": 2,
        "hours": 1,
        "spot": True,
        "command": command,
        "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
        "checkpoint": {"everySeconds": 5},
        "recovery": {"strategy": strategy, "maxRestarts": max_restarts},
    }
    return {"apiVersion": "polycloud/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


@dataclass
class Harness:
    store: Store
    controller: JobController
    fleet: FleetService
    home: Path
    control: Path

    def apply(self, *jobs: dict[str, Any]) -> None:
        docs = [cluster(name, i) for i, name in enumerate(SITES)] + list(jobs)
        self.fleet.apply(docs, author="test", message="", dry_run=False)

    def run(self, name: str) -> JobRunRecord:
        return self.store.job_runs(name)[-1]

    def wait_final(self, name: str) -> JobRunRecord:
        def final() -> JobRunRecord | None:
            runs = self.store.job_runs(name)
            return (
                runs[-1] if runs and runs[-1].final and runs[-1].latest and runs[-1].latest.ended_at else None
            )

        return wait_until(final, 60, f"job {name} to end")

    def wait_file(self, name: str) -> Path:
        path = self.control / name
        wait_until(path.exists, 60, f"{name} to appear")
        return path

    def flag(self, name: str) -> None:
        (self.control / name).touch()

    def trace(self) -> list[dict[str, Any]]:
        lines = (self.control / "trace.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    home = (tmp_path / "home").resolve()
    control = tmp_path / "control"
    control.mkdir()
    store = Store.open(f"sqlite:///{home / 'state.db'}")
    catalog = load_catalog()
    controller = JobController(
        store, catalog, home, lambda kind, name, h: create_driver(kind, name, h), interval_s=0.05
    )
    controller.start()
    try:
        yield Harness(store, controller, FleetService(store, catalog), home, control)
    finally:
        controller.stop()
        for name in SITES:
            for proc in scan_jobs(home, name).values():
                os.killpg(proc.pid, signal.SIGKILL)
        controller.close()
        store.close()


@pytest.mark.parametrize("strategy", ["same-cluster", "next-cheapest"])
def test_preempted_at_many_points_it_resumes_from_the_last_good_checkpoint(
    harness: Harness, strategy: str
) -> None:
    h = harness
    # attempt 1: SIGKILL at step 7 (before any checkpoint); 2: preempted with a grace at step 23 (it
    # checkpoints there); 3: SIGKILL in the middle of writing the step-30 checkpoint; 4: crashes at 41.
    for name in ("pause-a1-at-7", "pause-a2-at-23", "hold-a3-at-30", "fail-a4-at-41"):
        h.flag(name)
    h.apply(job("train", h.control, steps=60, every=10, strategy=strategy, max_restarts=4))

    h.wait_file("paused-a1-7")
    assert h.controller.preempt("train", grace_s=0) == "spot-a"
    h.wait_file("paused-a2-23")
    h.controller.preempt("train", grace_s=30)
    h.wait_file("holding-a3-30")
    h.controller.preempt("train", grace_s=0.2)  # the job ignores SIGTERM mid-write: SIGKILL tears it
    run = h.wait_final("train")

    trace = h.trace()
    assert not [t for t in trace if t["event"] == "torn"]
    starts = [t["resumed_from"] for t in trace if t["event"] == "start"]
    assert starts == [0, 0, 23, 23, 40]  # never more than one checkpoint interval lost
    assert json.loads((h.control / "result.json").read_text())["w"] == train_sgd.reference(60)
    assert run.state == "succeeded"
    assert [a.state for a in run.attempts] == ["preempted", "preempted", "preempted", "failed", "succeeded"]
    clusters = [a.cluster for a in run.attempts]
    if strategy == "same-cluster":
        assert clusters == ["spot-a"] * 5 and run.bytes_moved == 0 and run.egress_usd == 0
    else:
        assert clusters == ["spot-a", "spot-b", "spot-a", "spot-b", "spot-a"]
        assert run.bytes_moved > 0
        assert run.egress_usd == pytest.approx(run.bytes_moved / 1e9 * EGRESS_USD_PER_GB)
    assert all(a.hourly_usd == SITES[a.cluster][1] and a.nodes == 2 for a in run.attempts)


def test_exhausted_restarts_fail_the_job(harness: Harness) -> None:
    h = harness
    for attempt in (1, 2):
        h.flag(f"fail-a{attempt}-at-3")
    h.apply(job("flaky", h.control, steps=20, every=5, strategy="same-cluster", max_restarts=1))
    run = h.wait_final("flaky")
    assert run.state == "failed" and [a.state for a in run.attempts] == ["failed", "failed"]
    assert "no restarts left" in run.message
    assert h.store.events(workload="flaky")[0].reason == "JobFailed"


def test_a_cancelled_job_stops_and_is_not_restarted(harness: Harness) -> None:
    h = harness
    h.flag("pause-a1-at-5")
    h.apply(job("doomed", h.control, steps=20, every=5, strategy="same-cluster", max_restarts=3))
    h.wait_file("paused-a1-5")
    h.controller.cancel("doomed")
    run = h.wait_final("doomed")
    assert run.state == "cancelled" and [a.state for a in run.attempts] == ["cancelled"]
    assert not scan_jobs(h.home, "spot-a")


def test_status_document_has_exactly_the_promised_fields(harness: Harness) -> None:
    h = harness
    h.apply(job("quick", h.control, steps=10, every=5, strategy="same-cluster", max_restarts=0))
    run = h.wait_final("quick")
    assert run.state == "succeeded"
    (entry,) = h.controller.status()["jobs"]
    assert set(entry) == {"name", "state", "cluster", "attempts", "checkpointBytesMoved", "costUSD"}
    assert set(entry["attempts"][0]) == {"cluster", "pid", "state", "startedAt", "endedAt"}
    assert (entry["name"], entry["state"], entry["cluster"]) == ("quick", "succeeded", "spot-a")
    attempt = run.attempts[0]
    assert attempt.ended_at is not None
    seconds = (attempt.ended_at - attempt.started_at).total_seconds()
    assert entry["costUSD"] == pytest.approx(seconds / 3600 * 0.10 * 2, abs=1e-6)
    assert "done after 10 steps" in "\n".join(h.controller.log_lines("quick", 5))


def test_a_new_revision_replaces_the_running_one_and_starts_from_scratch(harness: Harness) -> None:
    h = harness
    h.flag("pause-a1-at-7")
    h.apply(job("evolving", h.control, steps=20, every=5, strategy="same-cluster", max_restarts=1))
    h.wait_file("paused-a1-7").unlink()  # checkpointed at step 5; the paused process idles on
    (h.control / "pause-a1-at-7").unlink()  # the new revision's first attempt must not pause too
    h.apply(job("evolving", h.control, steps=12, every=5, strategy="same-cluster", max_restarts=1))

    def two_runs() -> list[JobRunRecord] | None:
        runs = h.store.job_runs("evolving")
        return runs if len(runs) == 2 and runs[1].state == "succeeded" else None

    old, new = wait_until(two_runs, 60, "the new revision to finish")
    assert old.state == "cancelled" and old.attempts[0].state == "cancelled"
    new_attempt = new.attempts[0]
    assert old.attempts[0].ended_at is not None and new_attempt.started_at >= old.attempts[0].ended_at
    starts = [t["resumed_from"] for t in h.trace() if t["event"] == "start"]
    assert starts == [0, 0]  # the old revision's step-5 checkpoint is not the new one's


def test_a_new_control_plane_adopts_running_jobs_and_learns_how_they_ended(harness: Harness) -> None:
    h = harness
    h.flag("pause-a1-at-4")
    h.apply(job("orphan", h.control, steps=12, every=2, strategy="next-cheapest", max_restarts=2))
    h.wait_file("paused-a1-4")
    h.controller.stop()  # the old control plane dies; its job keeps running in a session of its own
    successor = JobController(
        h.store,
        load_catalog(),
        h.home,
        lambda kind, name, home: create_driver(kind, name, home),
        interval_s=0.05,
    )
    for _ in range(3):
        successor.step()
    assert [(a.number, a.state) for a in h.run("orphan").attempts] == [(1, "running")]  # adopted, not doubled
    successor.preempt("orphan", grace_s=30)
    successor.start()
    try:
        run = h.wait_final("orphan")
    finally:
        successor.stop()
        successor.close()
    assert run.state == "succeeded" and [a.cluster for a in run.attempts] == ["spot-a", "spot-b"]
    assert [t["resumed_from"] for t in h.trace() if t["event"] == "start"] == [0, 4]


def test_an_attempt_its_cluster_no_longer_reports_counts_as_a_failure(harness: Harness) -> None:
    h = harness
    h.controller.lost_after_s = 0.0
    h.flag("pause-a1-at-2")
    h.apply(job("vanishing", h.control, steps=6, every=2, strategy="same-cluster", max_restarts=1))
    h.wait_file("paused-a1-2")
    # The node and its disk are gone at once. The disk goes first: a controller pass between the two
    # steps must find no record (lost), never a record of a killed process (an ordinary failure).
    procs = list(scan_jobs(h.home, "spot-a").values())
    shutil.rmtree(h.home / "jobs" / "spot-a" / "vanishing")
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
    run = h.wait_final("vanishing")
    assert run.state == "succeeded" and [a.state for a in run.attempts] == ["failed", "succeeded"]
    lost = [e for e in h.store.events(workload="vanishing") if e.reason == "JobAttemptLost"]
    assert len(lost) == 1 and "no longer reported" in lost[0].message
