"""Job-run operations on an open session: runs per (job, revision) and the attempts that make them up.

A final run (succeeded, failed, cancelled) never changes again: every write checks that first, so a
late report of a process that was cancelled cannot revive the run.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polycloud.errors import ConflictError, NotFoundError
from polycloud.state.job_records import (
    ATTEMPT_STATES,
    FINAL_RUN_STATES,
    JOB_RUN_STATES,
    AttemptInput,
    AttemptRecord,
    AttemptState,
    JobRunRecord,
    JobRunState,
    attempt_state,
    run_state,
)
from polycloud.state.records import stored
from polycloud.state.tables_runtime import JobAttemptRow, JobRunRow


def create_run(session: Session, job: str, revision: int, cluster: str, now: datetime) -> JobRunRecord:
    """The run of (`job`, `revision`), created `pending` on `cluster` when there is none yet."""
    row = session.scalars(
        select(JobRunRow).where(JobRunRow.job == job, JobRunRow.revision == revision)
    ).one_or_none()
    if row is None:
        row = JobRunRow(
            job=job,
            revision=revision,
            state="pending",
            cluster=cluster,
            bytes_moved=0,
            egress_usd=0.0,
            message="",
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
    return _record(row, _attempts(session, [row.id]).get(row.id, []))


def list_runs(session: Session, job: str | None = None) -> list[JobRunRecord]:
    """Every run (of `job`, when given), sorted by (job, revision), with their attempts."""
    query = select(JobRunRow).order_by(JobRunRow.job, JobRunRow.revision)
    if job is not None:
        query = query.where(JobRunRow.job == job)
    rows = list(session.scalars(query))
    attempts = _attempts(session, [r.id for r in rows])
    return [_record(r, attempts.get(r.id, [])) for r in rows]


def add_attempt(session: Session, run_id: int, attempt: AttemptInput, now: datetime) -> None:
    """Record a started attempt and make the run `running` on its cluster, egress added (one write)."""
    run = _open_run(session, run_id)
    session.add(
        JobAttemptRow(
            run_id=run_id,
            number=attempt.number,
            cluster=attempt.cluster,
            pid=attempt.pid,
            state="running",
            hourly_usd=attempt.hourly_usd,
            nodes=attempt.nodes,
            started_at=attempt.started_at,
            ended_at=None,
            exit_code=None,
            message="",
        )
    )
    run.state = "running"
    run.cluster = attempt.cluster
    run.bytes_moved += attempt.bytes_moved
    run.egress_usd += attempt.egress_usd
    run.message = ""
    run.updated_at = now


def end_attempt(
    session: Session,
    run_id: int,
    number: int,
    *,
    state: AttemptState,
    exit_code: int | None,
    message: str,
    run: JobRunState,
    now: datetime,
) -> None:
    """Close attempt `number` as `state` and move its run to `run`, both or neither.

    An attempt that has ended already keeps its first ending; the run still moves (unless final).
    """
    row = session.get(JobAttemptRow, (run_id, number))
    if row is None:
        raise NotFoundError(f"job run {run_id} has no attempt {number}")
    attempt_state(state)
    if row.ended_at is None:
        row.state, row.exit_code, row.message, row.ended_at = state, exit_code, message, now
    set_state(session, run_id, run, message, now)


def set_state(session: Session, run_id: int, state: JobRunState, message: str, now: datetime) -> bool:
    """Move a run that is not final to `state`; False (and no change) when it is final already."""
    run_state(state)
    row = session.get(JobRunRow, run_id)
    if row is None:
        raise NotFoundError(f"no job run {run_id}")
    if row.state in FINAL_RUN_STATES:
        return False
    row.state, row.message, row.updated_at = state, message, now
    return True


def _open_run(session: Session, run_id: int) -> JobRunRow:
    row = session.get(JobRunRow, run_id)
    if row is None:
        raise NotFoundError(f"no job run {run_id}")
    if row.state in FINAL_RUN_STATES:
        raise ConflictError(f"job {row.job} r{row.revision} has {row.state} already")
    return row


def _attempts(session: Session, run_ids: list[int]) -> dict[int, list[AttemptRecord]]:
    if not run_ids:
        return {}
    query = (
        select(JobAttemptRow)
        .where(JobAttemptRow.run_id.in_(run_ids))
        .order_by(JobAttemptRow.run_id, JobAttemptRow.number)
    )
    found: dict[int, list[AttemptRecord]] = {}
    for row in session.scalars(query):
        found.setdefault(row.run_id, []).append(
            AttemptRecord(
                number=row.number,
                cluster=row.cluster,
                pid=row.pid,
                state=stored(row.state, ATTEMPT_STATES, "attempt state"),
                hourly_usd=row.hourly_usd,
                nodes=row.nodes,
                started_at=row.started_at,
                ended_at=row.ended_at,
                exit_code=row.exit_code,
                message=row.message,
            )
        )
    return found


def _record(row: JobRunRow, attempts: list[AttemptRecord]) -> JobRunRecord:
    return JobRunRecord(
        id=row.id,
        job=row.job,
        revision=row.revision,
        state=stored(row.state, JOB_RUN_STATES, "job state"),
        cluster=row.cluster,
        bytes_moved=row.bytes_moved,
        egress_usd=row.egress_usd,
        message=row.message,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempts=tuple(attempts),
    )
