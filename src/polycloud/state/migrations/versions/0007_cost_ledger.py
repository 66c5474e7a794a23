"""Cost ledger: accrued compute, egress and job cost, and budget alerts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253
_CATEGORIES = "category IN ('compute', 'egress')"
_SOURCES = "source IN ('replicas', 'dataset-reads', 'job-attempts', 'job-datasets', 'checkpoints')"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `cost_ledger`, `cost_cursor` and `budget_alerts`."""
    op.create_table(
        "cost_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hour", _utc(), nullable=False),
        sa.Column("workload", sa.String(_NAME), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(_NAME), nullable=False),
        sa.Column("provider", sa.String(_NAME), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("project", sa.String(_NAME), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cost_ledger"),
        sa.UniqueConstraint(
            "hour",
            "workload",
            "revision",
            "cluster",
            "category",
            "source",
            name="uq_cost_ledger_hour_workload_revision_cluster_category_source",
        ),
        sa.CheckConstraint(_CATEGORIES, name="ck_cost_ledger_category"),
        sa.CheckConstraint(_SOURCES, name="ck_cost_ledger_source"),
    )
    op.create_index("ix_cost_ledger_hour", "cost_ledger", ["hour"])
    op.create_table(
        "cost_cursor",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("accrued_until", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_cost_cursor"),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("policy", sa.String(_NAME), nullable=False),
        sa.Column("label", sa.String(_NAME), nullable=False),
        sa.Column("value", sa.String(_NAME), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("threshold", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("spend_usd", sa.Float(), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("policy", "label", "value", "month", "threshold", name="pk_budget_alerts"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("budget_alerts")
    op.drop_table("cost_cursor")
    op.drop_index("ix_cost_ledger_hour", table_name="cost_ledger")
    op.drop_table("cost_ledger")
