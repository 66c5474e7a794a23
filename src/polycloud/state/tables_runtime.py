"""Tables of what the controller runs beside replicas: canary rollouts with the per-revision counts that
judge them, and managed training jobs with their attempts. Migrations must match these exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from polycloud.exchange import RevisionCounts
from polycloud.state.job_records import ATTEMPT_STATES, JOB_RUN_STATES
from polycloud.state.records import (
    stored,
)
from polycloud.state.rollout_records import ROLLOUT_STATES, RolloutRecord
from polycloud.state.tables import NAME, Base, in_list


class RolloutRow(Base):
    """One canary rollout; the controller updates it as steps pass, and it stays as history."""

    __tablename__ = "rollouts"
    __table_args__ = (CheckConstraint(in_list("state", ROLLOUT_STATES), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(NAME), index=True)
    baseline: Mapped[int]
    canary: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    steps: Mapped[list[int]] = mapped_column(JSON)
    step: Mapped[int]
    step_started_at: Mapped[datetime | None]
    window: Mapped[dict[str, Any]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def to_record(self) -> RolloutRecord:
        """This row as a detached record."""
        return RolloutRecord(
            id=self.id,
            service=self.service,
            baseline=self.baseline,
            canary=self.canary,
            state=stored(self.state, ROLLOUT_STATES, "rollout state"),
            steps=tuple(int(s) for s in self.steps),
            step=self.step,
            step_started_at=self.step_started_at,
            window=dict(self.window),
            figures=dict(self.figures),
            message=self.message,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class RevisionCountsRow(Base):
    """One gateway's cumulative attempt counts for one (service, revision); replaced every report."""

    __tablename__ = "revision_counts"

    gateway_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    service: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    revision: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    attempts: Mapped[int]
    failures: Mapped[int]
    buckets: Mapped[list[int]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(index=True)

    def to_record(self) -> RevisionCounts:
        """This row as a detached record."""
        return RevisionCounts(
            service=self.service,
            revision=self.revision,
            attempts=self.attempts,
            failures=self.failures,
            buckets=tuple(int(b) for b in self.buckets),
            gateway_id=self.gateway_id,
            updated_at=self.updated_at,
        )


class JobRunRow(Base):
    """One run of a job revision; `state` moves pending → running → succeeded | failed | cancelled."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job", "revision"),
        CheckConstraint(in_list("state", JOB_RUN_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(NAME))
    revision: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    cluster: Mapped[str | None] = mapped_column(String(NAME))
    bytes_moved: Mapped[int] = mapped_column(BigInteger)
    """Checkpoint bytes carried between clusters, over every attempt."""
    egress_usd: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JobAttemptRow(Base):
    """One process start of a run on one cluster; `ended_at` is set once, when it ends."""

    __tablename__ = "job_attempts"
    __table_args__ = (
        ForeignKeyConstraint(["run_id"], ["job_runs.id"]),
        CheckConstraint(in_list("state", ATTEMPT_STATES), name="state"),
    )

    run_id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    cluster: Mapped[str] = mapped_column(String(NAME))
    pid: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16))
    hourly_usd: Mapped[float] = mapped_column(Float)
    nodes: Mapped[int]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    message: Mapped[str] = mapped_column(Text)
