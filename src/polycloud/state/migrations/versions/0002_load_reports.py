"""Load reports: each gateway's latest in-flight, rate, error and latency figures per (service, cluster).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253


def upgrade() -> None:
    """Create `load_reports` and its index on `updated_at`."""
    op.create_table(
        "load_reports",
        sa.Column("gateway_id", sa.String(_NAME), nullable=False),
        sa.Column("service", sa.String(_NAME), nullable=False),
        sa.Column("cluster", sa.String(_NAME), nullable=False),
        sa.Column("in_flight", sa.Float(), nullable=False),
        sa.Column("in_flight_mean", sa.Float(), nullable=False),
        sa.Column("rps", sa.Float(), nullable=False),
        sa.Column("error_rate", sa.Float(), nullable=False),
        sa.Column("p99_ms", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "service", "cluster", name="pk_load_reports"),
    )
    op.create_index("ix_load_reports_updated_at", "load_reports", ["updated_at"])


def downgrade() -> None:
    """Drop `load_reports`."""
    op.drop_index("ix_load_reports_updated_at", table_name="load_reports")
    op.drop_table("load_reports")
