"""The optional job capability of a driver: run-to-completion processes with a checkpoint directory.

Core code asks `isinstance(driver, SupportsJobs)`, never which driver it is. A driver runs at most one
process per job name in its cluster; each start is an *attempt*, numbered by the controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

JobProcessState = Literal["running", "stopping", "succeeded", "failed", "preempted", "cancelled", "stopped"]
"""`stopping`: a stop or preemption signal was sent and the grace period runs; the last four are how
an attempt ended: on its own (exit 0 / non-zero), preempted, cancelled, or stopped by polycloud."""
StopReason = Literal["cancelled", "stopped"]


@dataclass(frozen=True)
class JobLaunch:
    """One attempt of a job the controller wants started."""

    job: str
    cluster: str
    revision: int
    attempt: int
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    """The spec's variables, secrets resolved; the driver adds `POLYCLOUD_CHECKPOINT_DIR` and friends."""
    checkpoint_every_s: float | None = None


@dataclass(frozen=True)
class JobStatus:
    """The latest attempt of a job in a cluster, as the driver observes it now."""

    job: str
    cluster: str
    revision: int
    attempt: int
    state: JobProcessState
    pid: int | None = None
    exit_code: int | None = None
    message: str = ""

    @property
    def ended(self) -> bool:
        return self.state not in ("running", "stopping")


@runtime_checkable
class SupportsJobs(Protocol):
    """Drivers that run training jobs. Every method is idempotent and returns quickly."""

    def start_job(self, launch: JobLaunch) -> JobStatus:
        """Start the attempt unless a process of that job already runs here; return its status.

        Raises:
            TransientError: It cannot start now (cluster down).
            PermanentError: It can never start as given (bad command, bad name).
        """
        ...

    def list_jobs(self) -> list[JobStatus]:
        """The latest attempt of every job this cluster has run, running or ended (ended ones stay
        listed, so a control plane that was down while a job ended still learns how it ended)."""
        ...

    def stop_job(self, job: str, grace_s: float = 10.0, why: StopReason = "stopped") -> None:
        """SIGTERM the job's process now, SIGKILL it after `grace_s`; its attempt ends as `why`.
        Must not raise when the job is not running."""
        ...

    def preempt(self, job: str, grace_s: float = 5.0) -> None:
        """Preempt like a spot reclaim: SIGTERM now (so the job can checkpoint), SIGKILL after
        `grace_s`; the attempt ends as `preempted`.

        Raises:
            NotFoundError: The job does not run in this cluster.
        """
        ...

    def checkpoint_dir(self, job: str) -> Path:
        """Where the job's checkpoints live in this cluster (`POLYCLOUD_CHECKPOINT_DIR`)."""
        ...

    def job_log(self, job: str) -> Path:
        """The file the job's output (every attempt) is appended to."""
        ...
