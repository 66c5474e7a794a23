"""Rollout and revision-count operations on an open session (see the `Store` methods that call them).

A service has at most one active rollout (progressing or paused): starting one supersedes the last.
Ending a rollout by rollback appends the revision that restores the baseline in the same transaction,
so a crash can never leave a rolled-back rollout whose canary still is the desired state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from polycloud.errors import ConflictError, NotFoundError, UserError
from polycloud.exchange import LATENCY_BOUNDS_MS, RevisionCounts
from polycloud.state import desired
from polycloud.state.rollout_records import ACTIVE_ROLLOUT_STATES, RolloutRecord, RolloutState
from polycloud.state.tables_runtime import RevisionCountsRow, RolloutRow

FORGET_AFTER_S = 3600.0
"""Counts of a gateway silent this long are deleted by any report."""


def _active(session: Session, service: str) -> RolloutRow | None:
    query = (
        select(RolloutRow)
        .where(RolloutRow.service == service, RolloutRow.state.in_(ACTIVE_ROLLOUT_STATES))
        .order_by(RolloutRow.id.desc())
    )
    return session.scalars(query).first()


def start(
    session: Session, service: str, baseline: int, canary: int, steps: Sequence[int], now: datetime
) -> RolloutRecord:
    """Begin a rollout of `canary` from `baseline`, superseding the service's active one if any."""
    if not steps or list(steps)[-1] != 100 or any(not 0 < s <= 100 for s in steps):
        raise UserError(f"rollout steps must be percentages ending at 100, not {list(steps)}")
    old = _active(session, service)
    if old is not None:
        old.state = "superseded"
        old.message = f"superseded by r{canary}"
        old.updated_at = now
    row = RolloutRow(
        service=service,
        baseline=baseline,
        canary=canary,
        state="progressing",
        steps=list(steps),
        step=0,
        step_started_at=None,
        window={},
        figures={},
        message=f"canary r{canary} against r{baseline}",
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row.to_record()


def listing(session: Session, service: str | None, limit: int) -> list[RolloutRecord]:
    """Rollouts newest first, optionally of one service."""
    query = select(RolloutRow).order_by(RolloutRow.id.desc()).limit(limit)
    if service is not None:
        query = query.where(RolloutRow.service == service)
    return [row.to_record() for row in session.scalars(query)]


def active(session: Session) -> list[RolloutRecord]:
    """Every active rollout, by service."""
    query = (
        select(RolloutRow)
        .where(RolloutRow.state.in_(ACTIVE_ROLLOUT_STATES))
        .order_by(RolloutRow.service, RolloutRow.id)
    )
    return [row.to_record() for row in session.scalars(query)]


def progress(
    session: Session, rollout_id: int, changes: dict[str, Any], now: datetime
) -> RolloutRecord | None:
    """Apply the controller's `changes` to an active rollout; None when it is no longer active (someone
    paused, aborted or superseded it meanwhile: the controller re-reads and decides again)."""
    row = session.get(RolloutRow, rollout_id)
    if row is None or row.state not in ACTIVE_ROLLOUT_STATES:
        return None
    allowed = {"state", "step", "step_started_at", "window", "figures", "message"}
    unknown = set(changes) - allowed
    if unknown:
        raise UserError(f"cannot change rollout fields {sorted(unknown)}")
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = now
    return row.to_record()


def control(session: Session, service: str, to: RolloutState, message: str, now: datetime) -> RolloutRecord:
    """Pause or resume the active rollout of `service` (an operator's request).

    Raises:
        NotFoundError: The service has no active rollout.
        ConflictError: It already is in state `to`.
    """
    row = _active(session, service)
    if row is None:
        raise NotFoundError(f"service {service!r} has no rollout in progress")
    if row.state == to:
        raise ConflictError(f"the rollout of {service!r} is already {to}")
    row.state = to
    row.message = message
    if to == "progressing":
        row.step_started_at = None  # the bake starts again: what was seen before the pause is old
    row.updated_at = now
    return row.to_record()


def end(
    session: Session,
    service: str,
    rollout_id: int | None,
    state: RolloutState,
    message: str,
    authorship: desired.Authorship,
) -> RolloutRecord:
    """End the active rollout of `service` as `state`; rolled back and aborted ones restore the baseline.

    Args:
        rollout_id: The rollout the caller judged, or None for whichever is active (an operator's abort).

    Raises:
        NotFoundError: No active rollout (or not the one named).
    """
    row = _active(session, service)
    if row is None or (rollout_id is not None and row.id != rollout_id):
        raise NotFoundError(f"service {service!r} has no rollout in progress")
    row.state = state
    row.message = message
    row.updated_at = authorship.now
    if state in ("rolled-back", "aborted"):
        pointer = desired.find_workload(session, service)
        if pointer.revision == row.canary:
            desired.rollback(session, service, row.baseline, authorship)
    return row.to_record()


def replace_counts(session: Session, gateway_id: str, rows: list[RevisionCounts], now: datetime) -> None:
    """Make `rows` the whole current counts of `gateway_id`."""
    if not gateway_id.strip():
        raise UserError("gateway_id must not be empty")
    width = len(LATENCY_BOUNDS_MS) + 1
    for r in rows:
        if len(r.buckets) != width or r.attempts < 0 or not 0 <= r.failures <= r.attempts:
            raise UserError(f"bad revision counts for {r.service}/r{r.revision}")
    session.execute(delete(RevisionCountsRow).where(RevisionCountsRow.gateway_id == gateway_id))
    horizon = now - timedelta(seconds=FORGET_AFTER_S)
    session.execute(delete(RevisionCountsRow).where(RevisionCountsRow.updated_at < horizon))
    session.add_all(
        RevisionCountsRow(
            gateway_id=gateway_id,
            service=r.service,
            revision=r.revision,
            attempts=r.attempts,
            failures=r.failures,
            buckets=list(r.buckets),
            updated_at=now,
        )
        for r in rows
    )


def counts(session: Session, service: str, since: datetime) -> list[RevisionCounts]:
    """Counts of `service` from every gateway that reported at or after `since`."""
    query = (
        select(RevisionCountsRow)
        .where(RevisionCountsRow.service == service, RevisionCountsRow.updated_at >= since)
        .order_by(RevisionCountsRow.gateway_id, RevisionCountsRow.revision)
    )
    return [row.to_record() for row in session.scalars(query)]
