"""Feature flag versions: every change of a FeatureFlag document, for its history and rollbacks.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `flag_revisions`."""
    op.create_table(
        "flag_revisions",
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(253), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("number >= 1", name="ck_flag_revisions_number_positive"),
        sa.PrimaryKeyConstraint("name", "number", name="pk_flag_revisions"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("flag_revisions")
