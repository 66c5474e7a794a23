"""Flag evaluation counts on an open session: gateways add their windows' counts per minute; the API
reads them summed over every gateway for a recent period (the dashboard's variant shares).

Each report adds to the row of the current UTC minute (the store clock's) of its (gateway, flag,
variant, error), under the "load" lock, so concurrent reports never lose an addition. A gateway reports
every second, so a table holds at most one row per minute, gateway and outcome; rows older than
`KEEP_S` are deleted by any report.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from polycloud.errors import UserError
from polycloud.exchange import FlagCount
from polycloud.state.tables_flags import FlagEvaluationRow

KEEP_S = 86400.0
"""How long per-minute counts are kept: the longest window the API answers for."""


def minute_of(moment: datetime) -> datetime:
    """The start of `moment`'s minute."""
    return moment.replace(second=0, microsecond=0)


def add(session: Session, gateway_id: str, counts: list[FlagCount], now: datetime) -> None:
    """Add `counts` to the current minute's rows of `gateway_id` (see `Store.add_flag_counts`)."""
    if not gateway_id or not gateway_id.strip():
        raise UserError("gateway_id must not be empty")
    outcomes = Counter((c.flag, c.variant, c.error) for c in counts)
    twice = sorted("/".join(o) for o, n in outcomes.items() if n > 1)
    if twice:
        raise UserError(f"one count per (flag, variant, error) only: {', '.join(twice)}")
    session.execute(
        delete(FlagEvaluationRow).where(FlagEvaluationRow.minute < now - timedelta(seconds=KEEP_S))
    )
    counts = [c for c in counts if c.count]
    if not counts:
        return
    minute = minute_of(now)
    query = select(FlagEvaluationRow).where(
        FlagEvaluationRow.gateway_id == gateway_id, FlagEvaluationRow.minute == minute
    )
    existing = {(r.flag, r.variant, r.error): r for r in session.scalars(query)}
    for c in counts:
        row = existing.get((c.flag, c.variant, c.error))
        if row is None:
            session.add(
                FlagEvaluationRow(
                    gateway_id=gateway_id,
                    flag=c.flag,
                    variant=c.variant,
                    error=c.error,
                    minute=minute,
                    evaluations=c.count,
                )
            )
        else:
            row.evaluations += c.count


def totals(session: Session, since: datetime) -> list[FlagCount]:
    """Counts per (flag, variant, error) of the minutes from `since`'s minute on, summed over every
    gateway, sorted (`gateway_id` empty)."""
    query = (
        select(
            FlagEvaluationRow.flag,
            FlagEvaluationRow.variant,
            FlagEvaluationRow.error,
            func.sum(FlagEvaluationRow.evaluations),
        )
        .where(FlagEvaluationRow.minute >= minute_of(since))
        .group_by(FlagEvaluationRow.flag, FlagEvaluationRow.variant, FlagEvaluationRow.error)
        .order_by(FlagEvaluationRow.flag, FlagEvaluationRow.variant, FlagEvaluationRow.error)
    )
    return [
        FlagCount(flag, variant, error, int(n or 0)) for flag, variant, error, n in session.execute(query)
    ]
