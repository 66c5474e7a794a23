"""Observability: per-minute SLI series, incidents with their timelines, anomalies.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `sli_minutes`, `incidents`, `incident_events` and `anomalies`."""
    op.create_table(
        "sli_minutes",
        sa.Column("service", sa.String(_NAME), nullable=False),
        sa.Column("cluster", sa.String(_NAME), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("minute", _utc(), nullable=False),
        sa.Column("requests", sa.Float(), nullable=False),
        sa.Column("errors", sa.Float(), nullable=False),
        sa.Column("p99_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("service", "cluster", "source", "minute", name="pk_sli_minutes"),
        sa.CheckConstraint("source IN ('traffic', 'probe')", name="ck_sli_minutes_source"),
    )
    op.create_index("ix_sli_minutes_minute", "sli_minutes", ["minute"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("service", sa.String(_NAME), nullable=True),
        sa.Column("cluster", sa.String(_NAME), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("opened_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("resolved_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.CheckConstraint("state IN ('open', 'resolved')", name="ck_incidents_state"),
    )
    op.create_index("ix_incidents_state", "incidents", ["state"])
    op.create_table(
        "incident_events",
        sa.Column("incident_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "event_id", name="pk_incident_events"),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_events_incident_id_incidents"
        ),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_incident_events_event_id_events"),
    )
    op.create_table(
        "anomalies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("service", sa.String(_NAME), nullable=False),
        sa.Column("cluster", sa.String(_NAME), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_anomalies"),
    )
    op.create_index("ix_anomalies_time", "anomalies", ["time"])


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_index("ix_anomalies_time", table_name="anomalies")
    op.drop_table("anomalies")
    op.drop_table("incident_events")
    op.drop_index("ix_incidents_state", table_name="incidents")
    op.drop_table("incidents")
    op.drop_index("ix_sli_minutes_minute", table_name="sli_minutes")
    op.drop_table("sli_minutes")
