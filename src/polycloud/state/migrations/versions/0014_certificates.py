"""Certificate requests and grants (mutual TLS inside the fleet).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 05:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `certificates`."""
    op.create_table(
        "certificates",
        sa.Column("holder", sa.String(253), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("holder", name="pk_certificates"),
    )


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("certificates")
