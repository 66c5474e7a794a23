"""Flag evaluations per gateway, flag, outcome and minute, for the dashboard's variant shares.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `flag_evaluations`."""
    op.create_table(
        "flag_evaluations",
        sa.Column("gateway_id", sa.String(253), nullable=False),
        sa.Column("flag", sa.String(253), nullable=False),
        sa.Column("variant", sa.String(253), nullable=False),
        sa.Column("error", sa.String(32), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluations", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("evaluations >= 0", name="ck_flag_evaluations_evaluations_not_negative"),
        sa.PrimaryKeyConstraint(
            "gateway_id", "flag", "variant", "error", "minute", name="pk_flag_evaluations"
        ),
    )
    op.create_index("ix_flag_evaluations_minute", "flag_evaluations", ["minute"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_flag_evaluations_minute", table_name="flag_evaluations")
    op.drop_table("flag_evaluations")
