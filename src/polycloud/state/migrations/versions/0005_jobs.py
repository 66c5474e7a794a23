"""Managed training jobs: runs per (job, revision) and their attempts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253
_RUN_STATES = "'pending', 'running', 'succeeded', 'failed', 'cancelled'"
_ATTEMPT_STATES = "'running', 'succeeded', 'failed', 'preempted', 'cancelled', 'stopped'"


def upgrade() -> None:
    """Create `job_runs` and `job_attempts`."""
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(_NAME), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cluster", sa.String(_NAME), nullable=True),
        sa.Column("bytes_moved", sa.BigInteger(), nullable=False),
        sa.Column("egress_usd", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"state IN ({_RUN_STATES})", name="ck_job_runs_state"),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
        sa.UniqueConstraint("job", "revision", name="uq_job_runs_job_revision"),
    )
    op.create_table(
        "job_attempts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cluster", sa.String(_NAME), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("hourly_usd", sa.Float(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.CheckConstraint(f"state IN ({_ATTEMPT_STATES})", name="ck_job_attempts_state"),
        sa.ForeignKeyConstraint(["run_id"], ["job_runs.id"], name="fk_job_attempts_run_id_job_runs"),
        sa.PrimaryKeyConstraint("run_id", "number", name="pk_job_attempts"),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("job_attempts")
    op.drop_table("job_runs")
