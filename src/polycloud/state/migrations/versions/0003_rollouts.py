"""Canary rollouts and per-revision request statistics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253
_STATES = "'progressing', 'paused', 'succeeded', 'rolled-back', 'aborted', 'superseded'"


def upgrade() -> None:
    """Create `rollouts` and `revision_counts`."""
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(_NAME), nullable=False),
        sa.Column("baseline", sa.Integer(), nullable=False),
        sa.Column("canary", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"state IN ({_STATES})", name="ck_rollouts_state"),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_service", "rollouts", ["service"])
    op.create_table(
        "revision_counts",
        sa.Column("gateway_id", sa.String(_NAME), nullable=False),
        sa.Column("service", sa.String(_NAME), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("buckets", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "service", "revision", name="pk_revision_counts"),
    )
    op.create_index("ix_revision_counts_updated_at", "revision_counts", ["updated_at"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_revision_counts_updated_at", table_name="revision_counts")
    op.drop_table("revision_counts")
    op.drop_index("ix_rollouts_service", table_name="rollouts")
    op.drop_table("rollouts")
