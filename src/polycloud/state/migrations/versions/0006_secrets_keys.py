"""Secrets (envelope-encrypted) and gateway inference keys with rate limits and quotas.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `secrets`, `inference_keys` and `key_usage`."""
    op.create_table(
        "secrets",
        sa.Column("project", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("project", "name", name="pk_secrets"),
        sa.CheckConstraint("version >= 1", name="ck_secrets_version_positive"),
    )
    op.create_table(
        "inference_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(_NAME), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("rps", sa.Float(), nullable=False),
        sa.Column("burst", sa.Integer(), nullable=False),
        sa.Column("monthly_quota", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inference_keys"),
        sa.UniqueConstraint("key_hash", name="uq_inference_keys_key_hash"),
        sa.CheckConstraint("rps > 0", name="ck_inference_keys_rps_positive"),
        sa.CheckConstraint("burst >= 1", name="ck_inference_keys_burst_positive"),
        sa.CheckConstraint(
            "monthly_quota IS NULL OR monthly_quota >= 1", name="ck_inference_keys_quota_positive"
        ),
    )
    op.create_index("ix_inference_keys_service", "inference_keys", ["service"])
    op.create_table(
        "key_usage",
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "month", name="pk_key_usage"),
        sa.ForeignKeyConstraint(["key_id"], ["inference_keys.id"], name="fk_key_usage_key_id_inference_keys"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("key_usage")
    op.drop_index("ix_inference_keys_service", table_name="inference_keys")
    op.drop_table("inference_keys")
    op.drop_table("secrets")
