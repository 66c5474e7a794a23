"""Dashboard sessions of people signed in with the company's OpenID Provider.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `person_sessions`."""
    op.create_table(
        "person_sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("person", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_person_sessions"),
        sa.UniqueConstraint("secret_hash", name="uq_person_sessions_secret_hash"),
    )
    op.create_index("ix_person_sessions_expires_at", "person_sessions", ["expires_at"])


def downgrade() -> None:
    """Drop it again."""
    op.drop_index("ix_person_sessions_expires_at", table_name="person_sessions")
    op.drop_table("person_sessions")
