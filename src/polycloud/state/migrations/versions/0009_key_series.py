"""Per-inference-key load reports, and the key of per-key anomalies.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 23:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253


def upgrade() -> None:
    """Create `key_loads`; add `key_id` and `key_name` to `anomalies`."""
    op.create_table(
        "key_loads",
        sa.Column("gateway_id", sa.String(_NAME), nullable=False),
        sa.Column("key_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("service", sa.String(_NAME), nullable=False),
        sa.Column("rps", sa.Float(), nullable=False),
        sa.Column("error_rate", sa.Float(), nullable=False),
        sa.Column("p99_ms", sa.Float(), nullable=False),
        sa.Column("mean_ms", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "key_id", name="pk_key_loads"),
    )
    op.create_index("ix_key_loads_updated_at", "key_loads", ["updated_at"])
    op.add_column("anomalies", sa.Column("key_id", sa.Integer(), nullable=True))
    op.add_column("anomalies", sa.Column("key_name", sa.String(_NAME), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_column("key_name")
        batch.drop_column("key_id")
    op.drop_index("ix_key_loads_updated_at", table_name="key_loads")
    op.drop_table("key_loads")
