"""Injected faults on an open session: recorded by the API, applied and released by the leader.

A fault is *wanted* while it is neither cleared nor past its `until`. The leader's reconciler makes
each cluster's driver carry exactly the wanted faults, then stamps them `applied_at`; faults no longer
wanted that it had applied get `released_at`. A `kill` fault is applied once and is then cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from polycloud.errors import UserError
from polycloud.state.tables_control import FAULT_KINDS, FaultRow


@dataclass(frozen=True)
class FaultInput:
    """A fault to record (see `polycloud.drivers.base.Fault` for what each kind does)."""

    cluster: str
    kind: str
    replica_id: str | None = None
    delay_ms: float = 0.0
    error_rate: float = 0.0
    until: datetime | None = None


@dataclass(frozen=True)
class FaultRecord:
    """A recorded fault and how far the leader got with it."""

    id: int
    cluster: str
    kind: str
    replica_id: str | None
    delay_ms: float
    error_rate: float
    created_at: datetime
    until: datetime | None
    cleared_at: datetime | None
    applied_at: datetime | None
    released_at: datetime | None

    def wanted(self, now: datetime) -> bool:
        """Whether the fault should be in force at `now`."""
        return self.cleared_at is None and (self.until is None or self.until > now)


def _record(row: FaultRow) -> FaultRecord:
    return FaultRecord(
        row.id,
        row.cluster,
        row.kind,
        row.replica_id,
        row.delay_ms,
        row.error_rate,
        row.created_at,
        row.until,
        row.cleared_at,
        row.applied_at,
        row.released_at,
    )


def add(session: Session, fault: FaultInput, now: datetime) -> FaultRecord:
    """Record `fault`, wanted from `now`."""
    if fault.kind not in FAULT_KINDS:
        raise UserError(f"unknown fault kind {fault.kind!r} (one of {', '.join(FAULT_KINDS)})")
    row = FaultRow(
        cluster=fault.cluster,
        kind=fault.kind,
        replica_id=fault.replica_id,
        delay_ms=fault.delay_ms,
        error_rate=fault.error_rate,
        created_at=now,
        until=fault.until,
    )
    session.add(row)
    session.flush()
    return _record(row)


def clear(session: Session, cluster: str, now: datetime) -> list[int]:
    """Clear every wanted fault of `cluster`; returns their ids."""
    rows = session.execute(
        select(FaultRow).where(FaultRow.cluster == cluster, FaultRow.cleared_at.is_(None))
    ).scalars()
    ids = []
    for row in rows:
        row.cleared_at = now
        ids.append(row.id)
    return ids


def live(session: Session) -> list[FaultRecord]:
    """Faults that are wanted, or were applied and not yet released, by id."""
    query = (
        select(FaultRow)
        .where(
            or_(
                FaultRow.cleared_at.is_(None),
                FaultRow.released_at.is_(None) & FaultRow.applied_at.isnot(None),
            )
        )
        .order_by(FaultRow.id)
    )
    return [_record(row) for row in session.execute(query).scalars()]


def by_ids(session: Session, ids: list[int]) -> list[FaultRecord]:
    rows = session.execute(select(FaultRow).where(FaultRow.id.in_(ids)).order_by(FaultRow.id)).scalars()
    return [_record(row) for row in rows]


def mark(
    session: Session, *, applied: list[int], released: list[int], consumed: list[int], now: datetime
) -> None:
    """Stamp what the leader did: applied these, took those back (they end cleared), and applied-and-ended
    the one-shot faults."""
    if applied:
        session.execute(
            update(FaultRow)
            .where(FaultRow.id.in_(applied), FaultRow.applied_at.is_(None))
            .values(applied_at=now)
        )
    if released:  # taken back, or ended before it was ever applied: either way, done with
        session.execute(
            update(FaultRow)
            .where(FaultRow.id.in_(released))
            .values(released_at=now, cleared_at=func.coalesce(FaultRow.cleared_at, now))
        )
    if consumed:
        session.execute(
            update(FaultRow)
            .where(FaultRow.id.in_(consumed))
            .values(applied_at=now, released_at=now, cleared_at=now)
        )
