"""Secrets (envelope-encrypted) and gateway inference keys with rate limits and quotas.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Placeholder: filled in by the change that owns this migration."""


def downgrade() -> None:
    """Placeholder."""
