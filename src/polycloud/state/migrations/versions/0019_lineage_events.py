"""Lineage events: OpenLineage RunEvents of job attempts and service rollouts, and their delivery outbox.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `lineage_events`."""
    op.create_table(
        "lineage_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_name", sa.String(253), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_events"),
        sa.UniqueConstraint("run_id", "event_type", name="uq_lineage_events_run_id_event_type"),
    )
    op.create_index("ix_lineage_events_run_id", "lineage_events", ["run_id"])
    op.create_index("ix_lineage_events_job_name", "lineage_events", ["job_name"])
    op.create_index("ix_lineage_events_sent_at", "lineage_events", ["sent_at"])


def downgrade() -> None:
    """Drop it."""
    op.drop_table("lineage_events")
