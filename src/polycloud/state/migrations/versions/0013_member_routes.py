"""What each gateway routes, carried by its heartbeat.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `members.routes` (JSON: service -> revisions with a ready replica in the gateway's table)."""
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("routes", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("members") as batch:
        batch.drop_column("routes")
