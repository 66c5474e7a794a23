"""Tokens as the unit: inference keys' token limits and usage, LLM tokens in load reports and per hour.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_LIMITS = (
    ("tokens_per_minute", "ck_inference_keys_tokens_per_minute_positive"),
    ("monthly_tokens", "ck_inference_keys_monthly_tokens_positive"),
)


def upgrade() -> None:
    """Add `inference_keys.tokens_per_minute` and `.monthly_tokens` (with their checks), `key_usage.tokens`,
    `load_reports.prompt_tokens` and `.completion_tokens`; create `token_usage`.

    The key limits are added with a column constraint in plain `ALTER TABLE ... ADD COLUMN`, which both
    SQLite and PostgreSQL take: SQLite could otherwise add a check only by copying the table, and
    `inference_keys` is referenced by `key_usage` (a copy would break the foreign key's rows).
    """
    for column, check in KEY_LIMITS:
        op.execute(
            f"ALTER TABLE inference_keys ADD COLUMN {column} BIGINT "
            f"CONSTRAINT {check} CHECK ({column} IS NULL OR {column} >= 1)"
        )
    op.add_column("key_usage", sa.Column("tokens", sa.BigInteger(), server_default="0", nullable=False))
    for column in ("prompt_tokens", "completion_tokens"):
        op.add_column("load_reports", sa.Column(column, sa.BigInteger(), server_default="0", nullable=False))
    op.create_table(
        "token_usage",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(253), nullable=False),
        sa.Column("cluster", sa.String(253), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hour", "service", "cluster", name="pk_token_usage"),
    )


def downgrade() -> None:
    """Drop them again (plain `DROP COLUMN`: each check belongs to its own column)."""
    op.drop_table("token_usage")
    for column in ("completion_tokens", "prompt_tokens"):
        op.execute(f"ALTER TABLE load_reports DROP COLUMN {column}")
    op.execute("ALTER TABLE key_usage DROP COLUMN tokens")
    for column, _ in reversed(KEY_LIMITS):
        op.execute(f"ALTER TABLE inference_keys DROP COLUMN {column}")
