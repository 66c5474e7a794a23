"""Load-report operations on an open session: each gateway replaces its own rows; readers take fresh ones.

A gateway's rows are its whole latest report, so a (service, cluster) it no longer serves disappears
with the next report. Rows of gateways that stopped reporting are ignored by `fresh_reports` once older
than the reader's `max_age_s`, and deleted by any report once older than `FORGET_AFTER_S`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from polycloud.errors import UserError
from polycloud.exchange import LoadReport
from polycloud.state.tables import LoadReportRow

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
        )
        for r in rows
    )


def fresh_reports(session: Session, since: datetime) -> list[LoadReport]:
    """Rows of every gateway written at or after `since`, sorted by (service, cluster, gateway_id)."""
    query = (
        select(LoadReportRow)
        .where(LoadReportRow.updated_at >= since)
        .order_by(LoadReportRow.service, LoadReportRow.cluster, LoadReportRow.gateway_id)
    )
    return [row.to_record() for row in session.scalars(query)]
