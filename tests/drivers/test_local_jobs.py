"""Job processes on the local driver: environment, exit states, preemption with a grace, adoption."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support import wait_until

from polycloud.drivers.jobs import JobLaunch, JobStatus, SupportsJobs
from polycloud.drivers.local import LocalDriver
from polycloud.drivers.local.jobs import scan_jobs
from polycloud.errors import NotFoundError

Make = Callable[[str], LocalDriver]


@pytest.fixture
def jobs_home(home: Path) -> Iterator[Path]:
    """The driver home; every job process group under it is killed at teardown."""
    yield home
    root = home / "jobs"
    for cluster in root.iterdir() if root.is_dir() else []:
        for proc in scan_jobs(home, cluster.name).values():
            os.killpg(proc.pid, signal.SIGKILL)


def launch(job: str, code: str, attempt: int = 1, cluster: str = "local-a", **env: str) -> JobLaunch:
    return JobLaunch(job, cluster, 1, attempt, ("python", "-c", code), env, checkpoint_every_s=30)


def ended(driver: LocalDriver, job: str) -> JobStatus:
    def check() -> JobStatus | None:
        status = next((s for s in driver.list_jobs() if s.job == job), None)
        return status if status is not None and status.ended else None

    return wait_until(check, 30, f"job {job} to end")


def test_a_job_gets_its_checkpoint_dir_attempt_and_env_and_succeeds(
    jobs_home: Path, make_driver: Make
) -> None:
    driver = make_driver("local-a")
    assert isinstance(driver, SupportsJobs)
    code = (
        "import os, pathlib, sys; d = pathlib.Path(os.environ['POLYCLOUD_CHECKPOINT_DIR']);"
        "(d / 'seen').write_text(os.environ['POLYCLOUD_JOB_ATTEMPT'] + ' ' + os.environ['GREETING']);"
        "print('hello from', sys.executable)"
    )
    started = driver.start_job(launch("train", code, attempt=2, GREETING="hi"))
    assert started.state == "running" and started.pid is not None
    status = ended(driver, "train")
    assert (status.state, status.exit_code, status.attempt) == ("succeeded", 0, 2)
    assert (driver.checkpoint_dir("train") / "seen").read_text() == "2 hi"
    log = driver.job_log("train").read_text()
    assert "train attempt 2 on local-a" in log and f"hello from {sys.executable}" in log


def test_a_failing_job_reports_its_exit_status_and_last_line(jobs_home: Path, make_driver: Make) -> None:
    driver = make_driver("local-a")
    driver.start_job(launch("crash", "import sys; print('out of memory'); sys.exit(7)"))
    status = ended(driver, "crash")
    assert status.state == "failed" and status.exit_code == 7
    assert "exit status 7" in status.message and "out of memory" in status.message


def test_preemption_sends_sigterm_first_and_the_job_can_finish_its_checkpoint(
    jobs_home: Path, make_driver: Make, tmp_path: Path
) -> None:
    driver = make_driver("local-a")
    ready = tmp_path / "ready"
    code = (
        "import os, pathlib, signal, sys, time\n"
        "d = pathlib.Path(os.environ['POLYCLOUD_CHECKPOINT_DIR'])\n"
        "def term(*_):\n    (d / 'last').write_text('saved'); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "while True: time.sleep(0.01)\n"
    )
    driver.start_job(launch("spot", code))
    wait_until(ready.exists, 30, "the job to install its handler")
    driver.preempt("spot", grace_s=30)
    status = ended(driver, "spot")
    assert status.state == "preempted" and status.exit_code == 143
    assert (driver.checkpoint_dir("spot") / "last").read_text() == "saved"


def test_preemption_kills_a_job_that_ignores_sigterm_after_the_grace(
    jobs_home: Path, make_driver: Make, tmp_path: Path
) -> None:
    driver = make_driver("local-a")
    ready = tmp_path / "ready"
    code = (
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "while True: time.sleep(0.01)\n"
    )
    driver.start_job(launch("stubborn", code))
    wait_until(ready.exists, 30, "the job to ignore SIGTERM")
    driver.preempt("stubborn", grace_s=0.3)
    assert ended(driver, "stubborn").state == "preempted"
    # The exit status is recorded by the job's own supervisor, which a loaded machine may run a moment
    # after the process is seen gone.
    status = wait_until(
        lambda: next(
            (s for s in driver.list_jobs() if s.job == "stubborn" and s.exit_code is not None), None
        ),
        10,
        "the exit status to be recorded",
    )
    assert status.state == "preempted" and status.exit_code == -signal.SIGKILL


def test_preempting_a_job_that_does_not_run_is_not_found(jobs_home: Path, make_driver: Make) -> None:
    with pytest.raises(NotFoundError):
        make_driver("local-a").preempt("ghost", 1.0)


def test_start_is_idempotent_and_another_driver_object_sees_and_stops_the_job(
    jobs_home: Path, make_driver: Make
) -> None:
    first, second = make_driver("local-a"), make_driver("local-a")
    code = "import time\nwhile True: time.sleep(0.01)"
    a = first.start_job(launch("long", code))
    b = first.start_job(launch("long", code, attempt=2))  # already running: the same process
    assert a.pid == b.pid and b.attempt == 1
    assert [(s.job, s.state, s.pid) for s in second.list_jobs()] == [("long", "running", a.pid)]
    assert make_driver("local-b").list_jobs() == []  # another cluster sees nothing
    second.stop_job("long", grace_s=5, why="cancelled")
    assert ended(first, "long").state == "cancelled"
