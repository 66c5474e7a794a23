"""Load-report operations on an open session: each gateway replaces its own rows; readers take fresh ones.

A gateway's rows are its whole latest report, so a (service, cluster) it no longer serves disappears
with the next report. Rows of gateways that stopped reporting are ignored by `fresh_reports` once older
than the reader's `max_age_s`, and deleted by any report once older than `FORGET_AFTER_S`.

The LLM tokens a report carries are counts of its window, not rates: each report also adds them to the
row of the current UTC hour of its (service, cluster) in `token_usage`, so every gateway's tokens are
summed there for good (cost per 1M tokens reads them back with `tokens_served`). Reports are written
under the "load" lock, so concurrent gateways never lose an addition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from polycloud.errors import UserError
from polycloud.exchange import LoadReport
from polycloud.state.ledger import hour_of
from polycloud.state.tables import LoadReportRow
from polycloud.state.tables_accounting import TokenUsageRow


@dataclass(frozen=True)
class TokensServed:
    """LLM tokens one (service, cluster) served over a period, summed over every gateway."""

    service: str
    cluster: str
    prompt: int
    completion: int

    @property
    def total(self) -> int:
        """Prompt and completion tokens."""
        return self.prompt + self.completion


FORGET_AFTER_S = 3600.0
"""Rows this old belong to a gateway that is long gone (ids carry a pid); any report deletes them."""


def replace_reports(session: Session, gateway_id: str, rows: list[LoadReport], now: datetime) -> None:
    """Make `rows` the whole report of `gateway_id`, stamped `now` (see `Store.report_load`)."""
    if not gateway_id or not gateway_id.strip():
        raise UserError("gateway_id must not be empty")
    foreign = sorted({r.gateway_id for r in rows if r.gateway_id not in ("", gateway_id)})
    if foreign:
        raise UserError(f"rows of gateway {gateway_id!r} name other gateways: {', '.join(foreign)}")
    counts = Counter((r.service, r.cluster) for r in rows)
    duplicates = sorted(f"{s}/{c}" for (s, c), n in counts.items() if n > 1)
    if duplicates:
        raise UserError(f"one row per (service, cluster) only: {', '.join(duplicates)}")
    session.execute(delete(LoadReportRow).where(LoadReportRow.gateway_id == gateway_id))
    horizon = now - timedelta(seconds=FORGET_AFTER_S)
    session.execute(delete(LoadReportRow).where(LoadReportRow.updated_at < horizon))
    session.add_all(
        LoadReportRow(
            gateway_id=gateway_id,
            service=r.service,
            cluster=r.cluster,
            in_flight=r.in_flight,
            in_flight_mean=r.in_flight_mean,
            rps=r.rps,
            error_rate=r.error_rate,
            p99_ms=r.p99_ms,
            p50_ms=r.p50_ms,
            updated_at=now,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            inter_token_ms=r.inter_token_ms,
        )
        for r in rows
    )
    _add_tokens(session, [r for r in rows if r.prompt_tokens or r.completion_tokens], now)


def _add_tokens(session: Session, rows: list[LoadReport], now: datetime) -> None:
    """Add the rows' tokens to the current hour of their (service, cluster)."""
    if not rows:
        return
    hour = hour_of(now)
    query = select(TokenUsageRow).where(
        TokenUsageRow.hour == hour, TokenUsageRow.service.in_(sorted({r.service for r in rows}))
    )
    existing = {(row.service, row.cluster): row for row in session.scalars(query)}
    for r in rows:
        row = existing.get((r.service, r.cluster))
        if row is None:
            session.add(
                TokenUsageRow(
                    hour=hour,
                    service=r.service,
                    cluster=r.cluster,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    updated_at=now,
                )
            )
        else:
            row.prompt_tokens += r.prompt_tokens
            row.completion_tokens += r.completion_tokens
            row.updated_at = now


def tokens_served(session: Session, since: datetime | None) -> list[TokensServed]:
    """Tokens per (service, cluster) in the hours from `since`'s hour on (all, when None), sorted."""
    query = select(
        TokenUsageRow.service,
        TokenUsageRow.cluster,
        func.sum(TokenUsageRow.prompt_tokens),
        func.sum(TokenUsageRow.completion_tokens),
    )
    if since is not None:
        query = query.where(TokenUsageRow.hour >= hour_of(since))
    query = query.group_by(TokenUsageRow.service, TokenUsageRow.cluster).order_by(
        TokenUsageRow.service, TokenUsageRow.cluster
    )
    return [
        TokensServed(service, cluster, int(prompt or 0), int(completion or 0))
        for service, cluster, prompt, completion in session.execute(query)
    ]


def fresh_reports(session: Session, since: datetime) -> list[LoadReport]:
    """Rows of every gateway written at or after `since`, sorted by (service, cluster, gateway_id)."""
    query = (
        select(LoadReportRow)
        .where(LoadReportRow.updated_at >= since)
        .order_by(LoadReportRow.service, LoadReportRow.cluster, LoadReportRow.gateway_id)
    )
    return [row.to_record() for row in session.scalars(query)]
