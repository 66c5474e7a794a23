"""Observability: incidents, anomalies and SLO alert state.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Placeholder: filled in by the change that owns this migration."""


def downgrade() -> None:
    """Placeholder."""
