"""Records of managed training jobs: one run per (job, revision), and the attempts that made it up.

A run is what `polycloud jobs status` shows for a job: its state, the cluster of its latest attempt, the
checkpoint bytes polycloud carried between clusters and what that egress cost. Each attempt is one
process start on one cluster, with its start and end times and the hourly price it paid, so the run's
cost can be computed from what was observed, not from the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from polycloud.errors import UserError
from polycloud.state.records import one_of

JobRunState = Literal["pending", "running", "succeeded", "failed", "cancelled"]
AttemptState = Literal["running", "succeeded", "failed", "preempted", "cancelled", "stopped"]
"""`stopped`: ended by polycloud itself (control plane shut down); the run resumes without a restart."""

JOB_RUN_STATES: tuple[JobRunState, ...] = get_args(JobRunState)
ATTEMPT_STATES: tuple[AttemptState, ...] = get_args(AttemptState)
FINAL_RUN_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class AttemptInput:
    """An attempt the controller has just started (the process runs already)."""

    number: int
    """1 for the first attempt of a run; `POLYCLOUD_JOB_ATTEMPT` of its process."""
    cluster: str
    pid: int | None
    hourly_usd: float
    """The price per node-hour it pays there (spot where the job asks for it)."""
    nodes: int
    started_at: datetime
    bytes_moved: int = 0
    """Checkpoint bytes copied to `cluster` before this attempt started."""
    egress_usd: float = 0.0
    """What moving them cost, at the transfer price between the two clusters."""

    def __post_init__(self) -> None:
        if self.number < 1 or self.nodes < 1:
            raise UserError(f"attempt number and nodes must be >= 1, not {self.number}, {self.nodes}")
        if self.hourly_usd < 0 or self.bytes_moved < 0 or self.egress_usd < 0:
            raise UserError("attempt prices and byte counts must be >= 0")
        if self.started_at.utcoffset() is None:
            raise UserError("attempt started_at must be timezone-aware")


@dataclass(frozen=True)
class AttemptRecord:
    """One stored attempt."""

    number: int
    cluster: str
    pid: int | None
    state: AttemptState
    hourly_usd: float
    nodes: int
    started_at: datetime
    ended_at: datetime | None
    exit_code: int | None
    message: str

    def cost_usd(self, now: datetime) -> float:
        """Observed run time (until `now` while it runs) × hourly price × nodes."""
        end = self.ended_at or now
        hours = max(0.0, (end - self.started_at).total_seconds()) / 3600.0
        return hours * self.hourly_usd * self.nodes


@dataclass(frozen=True)
class JobRunRecord:
    """One run of a job's revision, with its attempts oldest first."""

    id: int
    job: str
    revision: int
    state: JobRunState
    cluster: str | None
    """The cluster of the latest attempt (the planned one before any attempt)."""
    bytes_moved: int
    egress_usd: float
    message: str
    created_at: datetime
    updated_at: datetime
    attempts: tuple[AttemptRecord, ...] = ()

    @property
    def latest(self) -> AttemptRecord | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def restarts(self) -> int:
        """Attempts that restarted the job (a `stopped` attempt's successor is a resume, not a restart)."""
        ended = [a for a in self.attempts[:-1] if a.state != "stopped"]
        return len(ended)

    @property
    def final(self) -> bool:
        return self.state in FINAL_RUN_STATES

    def cost_usd(self, now: datetime) -> float:
        """Compute paid by every attempt plus checkpoint egress."""
        return sum(a.cost_usd(now) for a in self.attempts) + self.egress_usd


def run_state(value: str) -> JobRunState:
    """Narrow `value` to a run state, or raise `UserError`."""
    return one_of(value, JOB_RUN_STATES, "job state")


def attempt_state(value: str) -> AttemptState:
    """Narrow `value` to an attempt state, or raise `UserError`."""
    return one_of(value, ATTEMPT_STATES, "attempt state")
