"""The initial schema: revisions, workloads, documents, replicas, events, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 253
_IMMUTABLE = "revisions are immutable"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table, and the triggers that keep revisions append-only."""
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workload", sa.String(_NAME), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("placement", sa.JSON(), nullable=False),
        sa.Column("project", sa.String(_NAME), nullable=True),
        sa.Column("author", sa.String(_NAME), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revisions"),
        sa.UniqueConstraint("workload", "number", name="uq_revisions_workload_number"),
        sa.CheckConstraint("number >= 1", name="ck_revisions_number_positive"),
        sa.CheckConstraint("kind IN ('Service', 'Job')", name="ck_revisions_kind"),
    )
    op.create_table(
        "workloads",
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_workloads"),
        sa.ForeignKeyConstraint(
            ["name", "revision"],
            ["revisions.workload", "revisions.number"],
            name="fk_workloads_name_revision_revisions",
        ),
        sa.CheckConstraint("kind IN ('Service', 'Job')", name="ck_workloads_kind"),
    )
    op.create_table(
        "documents",
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", name="pk_documents"),
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(_NAME), nullable=False),
        sa.Column("workload", sa.String(_NAME), nullable=False),
        sa.Column("cluster", sa.String(_NAME), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(2048), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replicas"),
        sa.CheckConstraint("state IN ('starting', 'ready', 'failed', 'stopping')", name="ck_replicas_state"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("workload", sa.String(_NAME), nullable=True),
        sa.Column("cluster", sa.String(_NAME), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.CheckConstraint("level IN ('info', 'warning', 'error')", name="ck_events_level"),
    )
    op.create_index("ix_events_time", "events", ["time"])
    op.create_index("ix_events_workload_time", "events", ["workload", "time"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("project", sa.String(_NAME), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
        sa.CheckConstraint("role IN ('viewer', 'deployer', 'admin')", name="ck_tokens_role"),
    )
    _create_immutability_triggers()


def _create_immutability_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION revisions_immutable() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_IMMUTABLE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER revisions_immutable BEFORE UPDATE OR DELETE ON revisions "
            "FOR EACH ROW EXECUTE FUNCTION revisions_immutable()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER revisions_immutable_{action.lower()} BEFORE {action} ON revisions "
            f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"
        )


def downgrade() -> None:
    """Drop everything `upgrade` created."""
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER revisions_immutable ON revisions")
        op.execute("DROP FUNCTION revisions_immutable()")
    else:
        op.execute("DROP TRIGGER revisions_immutable_update")
        op.execute("DROP TRIGGER revisions_immutable_delete")
    for table in ("tokens", "events", "replicas", "documents", "workloads", "revisions"):
        op.drop_table(table)
