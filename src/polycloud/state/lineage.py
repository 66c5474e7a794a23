"""Lineage-event operations on an open session: record RunEvents once, list them, and run the outbox
(what is due for delivery, marked sent after a collector's 2xx, or failed with the error kept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from polycloud.state.tables_lineage import LineageEventRow


@dataclass(frozen=True)
class LineageEventInput:
    """One OpenLineage RunEvent to keep: `payload` is the event as JSON."""

    run_id: str
    event_type: str
    event_time: datetime
    job_name: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class LineageEventRecord:
    """A kept RunEvent and where its delivery stands."""

    id: int
    run_id: str
    event_type: str
    event_time: datetime
    job_name: str
    payload: dict[str, Any]
    sent_at: datetime | None
    tries: int
    last_error: str


def record(session: Session, events: list[LineageEventInput]) -> int:
    """Add the events whose (run, type) is not kept yet, in order; returns how many were added."""
    if not events:
        return 0
    keys = [(e.run_id, e.event_type) for e in events]
    query = select(LineageEventRow.run_id, LineageEventRow.event_type).where(
        tuple_(LineageEventRow.run_id, LineageEventRow.event_type).in_(keys)
    )
    seen = {(run, kind) for run, kind in session.execute(query)}
    added = 0
    for event in events:
        key = (event.run_id, event.event_type)
        if key in seen:
            continue
        seen.add(key)
        session.add(
            LineageEventRow(
                run_id=event.run_id,
                event_type=event.event_type,
                event_time=event.event_time,
                job_name=event.job_name,
                payload=event.payload,
                sent_at=None,
                tries=0,
                next_try_at=None,
                last_error="",
            )
        )
        added += 1
    session.flush()
    return added


def keys(session: Session) -> set[tuple[str, str]]:
    """(run id, event type) of every kept event: what the recorder need not build again."""
    return {
        (run, kind)
        for run, kind in session.execute(select(LineageEventRow.run_id, LineageEventRow.event_type))
    }


def listing(
    session: Session, job_name: str | None = None, event_type: str | None = None
) -> list[LineageEventRecord]:
    """Every kept event (of `job_name`, of `event_type`, when given), oldest first."""
    query = select(LineageEventRow).order_by(LineageEventRow.id)
    if job_name is not None:
        query = query.where(LineageEventRow.job_name == job_name)
    if event_type is not None:
        query = query.where(LineageEventRow.event_type == event_type)
    return [_record(row) for row in session.scalars(query)]


def open_runs(session: Session, kind: str) -> list[LineageEventRecord]:
    """START events of `kind` ("job" or "service") runs that have no ending event yet."""
    ended = select(LineageEventRow.run_id).where(LineageEventRow.event_type != "START")
    query = (
        select(LineageEventRow)
        .where(LineageEventRow.event_type == "START", LineageEventRow.run_id.not_in(ended))
        .order_by(LineageEventRow.id)
    )
    found = [_record(row) for row in session.scalars(query)]
    return [r for r in found if r.payload["run"]["facets"]["polycloud_run"].get("kind") == kind]


def unsent(session: Session, limit: int) -> list[LineageEventRecord]:
    """Up to `limit` events not delivered yet, oldest first (a collector sees them in order)."""
    query = select(LineageEventRow).where(LineageEventRow.sent_at.is_(None)).order_by(LineageEventRow.id)
    return [_record(row) for row in session.scalars(query.limit(limit))]


def mark_sent(session: Session, event_id: int, now: datetime) -> None:
    """The collector took the event (2xx): it is never sent again."""
    row = session.get(LineageEventRow, event_id)
    if row is not None and row.sent_at is None:
        row.sent_at, row.tries, row.last_error = now, row.tries + 1, ""


def mark_failed(session: Session, event_id: int, error: str, next_try_at: datetime) -> None:
    """A delivery failed: count it and keep why, for `polycloud lineage` and the logs."""
    row = session.get(LineageEventRow, event_id)
    if row is not None and row.sent_at is None:
        row.tries, row.last_error, row.next_try_at = row.tries + 1, error[:2000], next_try_at


def _record(row: LineageEventRow) -> LineageEventRecord:
    return LineageEventRecord(
        id=row.id,
        run_id=row.run_id,
        event_type=row.event_type,
        event_time=row.event_time,
        job_name=row.job_name,
        payload=row.payload,
        sent_at=row.sent_at,
        tries=row.tries,
        last_error=row.last_error,
    )
