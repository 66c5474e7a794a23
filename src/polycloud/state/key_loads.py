"""Per-inference-key load operations on an open session: each gateway replaces its own rows; the
observer reads fresh ones (as `polycloud.state.loads` does per (service, cluster))."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from polycloud.errors import UserError
from polycloud.exchange import KeyLoad
from polycloud.state.loads import FORGET_AFTER_S
from polycloud.state.tables_accounting import KeyLoadRow


def replace_key_loads(session: Session, gateway_id: str, rows: list[KeyLoad], now: datetime) -> None:
    """Make `rows` the whole per-key report of `gateway_id`, stamped `now`."""
    if not gateway_id or not gateway_id.strip():
        raise UserError("gateway_id must not be empty")
    ids = [r.key_id for r in rows]
    if len(set(ids)) != len(ids):
        raise UserError("one row per inference key only")
    session.execute(delete(KeyLoadRow).where(KeyLoadRow.gateway_id == gateway_id))
    horizon = now - timedelta(seconds=FORGET_AFTER_S)
    session.execute(delete(KeyLoadRow).where(KeyLoadRow.updated_at < horizon))
    session.add_all(
        KeyLoadRow(
            gateway_id=gateway_id,
            key_id=r.key_id,
            service=r.service,
            rps=r.rps,
            error_rate=r.error_rate,
            p99_ms=r.p99_ms,
            mean_ms=r.mean_ms,
            updated_at=now,
        )
        for r in rows
    )


def fresh_key_loads(session: Session, since: datetime) -> list[KeyLoad]:
    """Rows of every gateway written at or after `since`, sorted by (key id, gateway id)."""
    query = (
        select(KeyLoadRow)
        .where(KeyLoadRow.updated_at >= since)
        .order_by(KeyLoadRow.key_id, KeyLoadRow.gateway_id)
    )
    return [
        KeyLoad(r.key_id, r.service, r.rps, r.error_rate, r.p99_ms, r.mean_ms, r.gateway_id)
        for r in session.scalars(query)
    ]
