"""Observed-state operations on an open session: the replica snapshot and the event log."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from polycloud.errors import UserError
from polycloud.state.records import EventInput, EventRecord, ReplicaRecord
from polycloud.state.tables import EventRow, ReplicaRow


def replace_replicas(session: Session, replicas: list[ReplicaRecord]) -> None:
    """Delete the snapshot and insert `replicas` in its place (see `Store.replace_replicas`)."""
    duplicates = sorted(key for key, count in Counter(r.id for r in replicas).items() if count > 1)
    if duplicates:
        raise UserError(f"replica ids must be unique: {', '.join(duplicates)}")
    session.execute(delete(ReplicaRow))
    session.add_all(
        ReplicaRow(
            id=r.id,
            workload=r.workload,
            cluster=r.cluster,
            role=r.role,
            revision=r.revision,
            endpoint=r.endpoint,
            pid=r.pid,
            state=r.state,
            message=r.message,
            updated_at=r.updated_at,
        )
        for r in replicas
    )


def list_replicas(session: Session) -> list[ReplicaRecord]:
    """The snapshot sorted by (workload, cluster, id)."""
    query = select(ReplicaRow).order_by(ReplicaRow.workload, ReplicaRow.cluster, ReplicaRow.id)
    return [row.to_record() for row in session.scalars(query)]


def add_events(session: Session, events: list[EventInput], now: datetime) -> None:
    """Insert `events`, stamping those without a time with `now`."""
    session.add_all(
        EventRow(
            time=e.time or now,
            workload=e.workload,
            cluster=e.cluster,
            level=e.level,
            reason=e.reason,
            message=e.message,
        )
        for e in events
    )


def list_events(
    session: Session, *, workload: str | None, cluster: str | None, limit: int
) -> list[EventRecord]:
    """The newest `limit` matching events, newest first (ties broken by insertion order)."""
    if limit < 1:
        raise UserError(f"limit must be at least 1, not {limit}")
    query = select(EventRow)
    if workload is not None:
        query = query.where(EventRow.workload == workload)
    if cluster is not None:
        query = query.where(EventRow.cluster == cluster)
    query = query.order_by(EventRow.time.desc(), EventRow.id.desc()).limit(limit)
    return [row.to_record() for row in session.scalars(query)]
