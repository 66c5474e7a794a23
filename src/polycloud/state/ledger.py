"""The cost ledger on an open session: accruals batched into hourly rows, and budget alerts recorded once.

Two kinds of accrual reach the ledger, both computed by the accountant (`polycloud.controller.accounting`):

- a `RateAccrual` is a quantity per second (running replicas, prorated dataset reads). It accrues for
  the seconds since the shared cursor (`cost_cursor`), capped at `max_gap_s`, and the cursor moves to
  now in the same transaction. So several accountants on one database never count a second twice, and
  time when no accountant ran (the control plane was down) is not charged beyond the cap.
- a `TotalAccrual` is a running total measured elsewhere (a job's attempts, its checkpoint egress). The
  ledger adds only what exceeds what it holds already for the same key, so repeating a total is a no-op.

Everything lands in the row of the current UTC hour of its (workload, revision, cluster, category,
source): one write per key and pass, a few rows per workload and hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from polycloud.errors import UserError
from polycloud.state.hashing import canonical_json
from polycloud.state.observed import add_events
from polycloud.state.records import EventInput, WorkloadKind, one_of
from polycloud.state.tables_accounting import BudgetAlertRow, LedgerCursorRow, LedgerRow

Category = Literal["compute", "egress"]
Source = Literal["replicas", "dataset-reads", "job-attempts", "job-datasets", "checkpoints"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
SOURCES: tuple[Source, ...] = get_args(Source)
CURSOR = "time"
RowKey = tuple[str, int, str, str, str]
"""(workload, revision, cluster, category, source)."""


@dataclass(frozen=True)
class LedgerTag:
    """What a cost is for: the identity of a ledger row, plus what reports group it by."""

    workload: str
    kind: WorkloadKind
    revision: int
    cluster: str
    provider: str
    category: Category
    source: Source
    labels: dict[str, str] = field(default_factory=dict)
    project: str | None = None

    def __post_init__(self) -> None:
        if not self.workload or not self.cluster:
            raise UserError("a ledger entry needs a workload and a cluster")
        one_of(self.category, CATEGORIES, "ledger category")
        one_of(self.source, SOURCES, "ledger source")

    @property
    def key(self) -> RowKey:
        return (self.workload, self.revision, self.cluster, self.category, self.source)


@dataclass(frozen=True)
class RateAccrual:
    """`per_second` units accrue each second (e.g. 3 replicas = 3 replica-seconds per second)."""

    tag: LedgerTag
    per_second: float
    unit_usd: float
    """Price of one unit: hourly price / 3600 per replica-second, or USD per GB."""

    def __post_init__(self) -> None:
        if self.per_second < 0 or self.unit_usd < 0:
            raise UserError(f"{self.tag.workload}: accrual rates and prices must be >= 0")


@dataclass(frozen=True)
class TotalAccrual:
    """A measured running total; the ledger accrues its growth."""

    tag: LedgerTag
    quantity: float
    usd: float
    any_cluster: bool = False
    """Compare with what is held for the key on every cluster (the total is not split by cluster)."""


@dataclass(frozen=True)
class LedgerLine:
    """Accrued cost of one ledger key over a period, summed over its hourly rows."""

    tag: LedgerTag
    quantity: float
    usd: float
    first_hour: datetime
    last_hour: datetime


@dataclass(frozen=True)
class BudgetAlertInput:
    """A budget threshold found crossed this month."""

    policy: str
    label: str
    value: str
    month: str
    threshold: int
    spend_usd: float
    limit_usd: float
    event: EventInput


def hour_of(moment: datetime) -> datetime:
    """The start of `moment`'s hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


def accrue(
    session: Session, rates: list[RateAccrual], totals: list[TotalAccrual], now: datetime, max_gap_s: float
) -> float:
    """Add `rates` for the seconds since the cursor (at most `max_gap_s`) and the growth of `totals`.

    Returns:
        The seconds the rates were accrued for (0 on the very first call, which only sets the cursor).
    """
    seconds = _advance_cursor(session, now, max_gap_s)
    amounts: dict[RowKey, tuple[LedgerTag, float, float]] = {}
    for r in rates:
        _add(amounts, r.tag, r.per_second * seconds, r.per_second * seconds * r.unit_usd)
    held = _held(session, totals)
    for t in totals:
        quantity, usd = held.get(_held_key(t), (0.0, 0.0))
        _add(amounts, t.tag, max(0.0, t.quantity - quantity), max(0.0, t.usd - usd))
    _write(session, amounts, now)
    return seconds


def _advance_cursor(session: Session, now: datetime, max_gap_s: float) -> float:
    cursor = session.get(LedgerCursorRow, CURSOR)
    if cursor is None:
        session.add(LedgerCursorRow(name=CURSOR, accrued_until=now))
        return 0.0
    seconds = min(max(0.0, (now - cursor.accrued_until).total_seconds()), max_gap_s)
    cursor.accrued_until = max(now, cursor.accrued_until)
    return seconds


def _add(amounts: dict[RowKey, tuple[LedgerTag, float, float]], tag: LedgerTag, q: float, usd: float) -> None:
    if q <= 0 and usd <= 0:
        return
    _, q0, usd0 = amounts.get(tag.key, (tag, 0.0, 0.0))
    amounts[tag.key] = (tag, q0 + q, usd0 + usd)


def _held_key(t: TotalAccrual) -> tuple[str, int, str, str, str]:
    tag = t.tag
    return (tag.workload, tag.revision, "*" if t.any_cluster else tag.cluster, tag.category, tag.source)


def _held(
    session: Session, totals: list[TotalAccrual]
) -> dict[tuple[str, int, str, str, str], tuple[float, float]]:
    """What the ledger holds for each total's key, over every hour."""
    sources = sorted({t.tag.source for t in totals})
    if not sources:
        return {}
    query = (
        select(
            LedgerRow.workload,
            LedgerRow.revision,
            LedgerRow.cluster,
            LedgerRow.category,
            LedgerRow.source,
            func.sum(LedgerRow.quantity),
            func.sum(LedgerRow.usd),
        )
        .where(
            LedgerRow.source.in_(sources), LedgerRow.workload.in_(sorted({t.tag.workload for t in totals}))
        )
        .group_by(
            LedgerRow.workload, LedgerRow.revision, LedgerRow.cluster, LedgerRow.category, LedgerRow.source
        )
    )
    held: dict[tuple[str, int, str, str, str], tuple[float, float]] = {}
    for workload, revision, cluster, category, source, quantity, usd in session.execute(query):
        for where in (cluster, "*"):
            q0, usd0 = held.get((workload, revision, where, category, source), (0.0, 0.0))
            held[(workload, revision, where, category, source)] = (q0 + float(quantity), usd0 + float(usd))
    return held


def _write(session: Session, amounts: dict[RowKey, tuple[LedgerTag, float, float]], now: datetime) -> None:
    if not amounts:
        return
    hour = hour_of(now)
    existing = {
        (row.workload, row.revision, row.cluster, row.category, row.source): row
        for row in session.scalars(select(LedgerRow).where(LedgerRow.hour == hour))
    }
    for key, (tag, quantity, usd) in amounts.items():
        row = existing.get(key)
        if row is None:
            session.add(_new_row(tag, hour, quantity, usd, now))
        else:
            row.quantity += quantity
            row.usd += usd
            row.updated_at = now


def _new_row(tag: LedgerTag, hour: datetime, quantity: float, usd: float, now: datetime) -> LedgerRow:
    return LedgerRow(
        hour=hour,
        workload=tag.workload,
        kind=tag.kind,
        revision=tag.revision,
        cluster=tag.cluster,
        provider=tag.provider,
        category=tag.category,
        source=tag.source,
        labels=canonical_json(tag.labels),
        project=tag.project,
        quantity=quantity,
        usd=usd,
        updated_at=now,
    )


_KEY_COLUMNS = (
    LedgerRow.workload,
    LedgerRow.kind,
    LedgerRow.revision,
    LedgerRow.cluster,
    LedgerRow.provider,
    LedgerRow.category,
    LedgerRow.source,
    LedgerRow.labels,
    LedgerRow.project,
)
_ORDER = (LedgerRow.workload, LedgerRow.revision, LedgerRow.cluster, LedgerRow.category, LedgerRow.source)


def lines(session: Session, since: datetime | None, until: datetime | None = None) -> list[LedgerLine]:
    """Accrued cost per ledger key in the hours from `since`'s hour (all, when None) to `until`."""
    query = _summed(since, until).group_by(*_KEY_COLUMNS).order_by(*_ORDER)
    return [_line(row) for row in session.execute(query)]


def hourly_lines(session: Session, since: datetime | None, until: datetime | None = None) -> list[LedgerLine]:
    """As `lines`, but one line per ledger key and hour (its `first_hour` and `last_hour` are that hour),
    ordered by hour: what charts of spend over time need."""
    query = _summed(since, until).group_by(LedgerRow.hour, *_KEY_COLUMNS).order_by(LedgerRow.hour, *_ORDER)
    return [_line(row) for row in session.execute(query)]


def _summed(since: datetime | None, until: datetime | None) -> Select[*tuple[Any, ...]]:
    """Sums over the rows from `since`'s hour to `until`; the caller says what to group them by."""
    query = select(
        *_KEY_COLUMNS,
        func.sum(LedgerRow.quantity),
        func.sum(LedgerRow.usd),
        func.min(LedgerRow.hour),
        func.max(LedgerRow.hour),
    )
    if since is not None:
        query = query.where(LedgerRow.hour >= hour_of(since))
    if until is not None:
        query = query.where(LedgerRow.hour <= until)
    return query


def _line(row: tuple[object, ...]) -> LedgerLine:
    workload, kind, revision, cluster, provider, category, source, labels, project, q, usd, first, last = row
    tag = LedgerTag(
        workload=str(workload),
        kind=one_of(str(kind), ("Service", "Job"), "ledger workload kind"),
        revision=int(str(revision)),
        cluster=str(cluster),
        provider=str(provider),
        category=one_of(str(category), CATEGORIES, "ledger category"),
        source=one_of(str(source), SOURCES, "ledger source"),
        labels={str(k): str(v) for k, v in json.loads(str(labels)).items()},
        project=None if project is None else str(project),
    )
    return LedgerLine(tag, float(str(q)), float(str(usd)), _utc(first), _utc(last))


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise UserError(f"the ledger holds a bad hour {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_alerts(session: Session, alerts: list[BudgetAlertInput], now: datetime) -> list[BudgetAlertInput]:
    """Record the alerts not recorded yet (one per policy, label value, month and threshold) with their
    events; return those."""
    fresh: list[BudgetAlertInput] = []
    for a in alerts:
        key = (a.policy, a.label, a.value, a.month, a.threshold)
        if session.get(BudgetAlertRow, key) is not None or a in fresh:
            continue
        session.add(
            BudgetAlertRow(
                policy=a.policy,
                label=a.label,
                value=a.value,
                month=a.month,
                threshold=a.threshold,
                spend_usd=a.spend_usd,
                limit_usd=a.limit_usd,
                created_at=now,
            )
        )
        fresh.append(a)
    add_events(session, [a.event for a in fresh], now)
    return fresh
