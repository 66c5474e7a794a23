"""The table of OpenLineage run events: the lineage graph kept in the store and the outbox that delivers
it to a collector. Migrations must match it exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from polycloud.state.tables import NAME, Base


class LineageEventRow(Base):
    """One RunEvent, recorded once per (run, event type) however often the recorder sees the same state,
    and marked sent once a collector answered 2xx."""

    __tablename__ = "lineage_events"
    __table_args__ = (UniqueConstraint("run_id", "event_type"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(16))
    event_time: Mapped[datetime]
    job_name: Mapped[str] = mapped_column(String(NAME), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    tries: Mapped[int]
    next_try_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text)
