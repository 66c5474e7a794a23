"""Inter-token latency in load reports: the mean time between streamed tokens of each window.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `load_reports.inter_token_ms` (0 for rows written before it)."""
    op.add_column("load_reports", sa.Column("inter_token_ms", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    """Drop it again (plain `DROP COLUMN`, which SQLite and PostgreSQL both take)."""
    op.execute("ALTER TABLE load_reports DROP COLUMN inter_token_ms")
