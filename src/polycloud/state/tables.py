"""The ORM tables of the state store. Migrations in `migrations/versions/` must match these exactly.

Desired state is `revisions` (immutable history) plus `workloads` (which revision is current) and
`documents` (other declared objects). Observed state is `replicas` (a snapshot replaced wholesale),
`events` (append-only) and `load_reports` (each gateway's latest load figures). `tokens` holds API
credentials as sha256 digests only. The tables of later features live beside this module:
`tables_runtime` (rollouts, jobs), `tables_governance` (audit, secrets, inference keys) and
`tables_accounting` (cost ledger, budgets, SLI series, incidents, anomalies); all share `Base`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from polycloud.errors import UserError
from polycloud.exchange import LoadReport
from polycloud.state.records import (
    EVENT_LEVELS,
    REPLICA_STATES,
    TOKEN_ROLES,
    WORKLOAD_KINDS,
    DocumentState,
    EventRecord,
    ReplicaRecord,
    RevisionRecord,
    TokenRecord,
    WorkloadState,
    stored,
)

NAME = 253
"""Room for any DNS-1123 subdomain; the spec layer enforces the stricter label rules."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise UserError(f"timestamps must be timezone-aware, got {value.isoformat()}")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations can refer to them."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[dict[str, Any]]: JSON(),
    }


class RevisionRow(Base):
    """One immutable revision. Never updated or deleted (database triggers refuse both)."""

    __tablename__ = "revisions"
    __table_args__ = (
        UniqueConstraint("workload", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint(in_list("kind", WORKLOAD_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    workload: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(16))
    number: Mapped[int]
    """1 for a workload's first revision, then each new one is the previous maximum + 1."""
    spec: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    """sha256 of the canonical spec (as the caller computed it); equal hashes mean equal content."""
    placement: Mapped[list[dict[str, Any]]]
    project: Mapped[str | None] = mapped_column(String(NAME))
    author: Mapped[str] = mapped_column(String(NAME))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

    def to_record(self) -> RevisionRecord:
        """This row as a detached record."""
        return RevisionRecord(
            workload=self.workload,
            kind=stored(self.kind, WORKLOAD_KINDS, "workload kind"),
            number=self.number,
            spec=self.spec,
            content_hash=self.content_hash,
            placement=self.placement,
            project=self.project,
            author=self.author,
            message=self.message,
            created_at=self.created_at,
        )


class WorkloadRow(Base):
    """The desired-state pointer: which revision of a workload is current, and whether it is deleted."""

    __tablename__ = "workloads"
    __table_args__ = (
        ForeignKeyConstraint(["name", "revision"], ["revisions.workload", "revisions.number"]),
        CheckConstraint(in_list("kind", WORKLOAD_KINDS), name="kind"),
    )

    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """Always the kind of the current revision."""
    revision: Mapped[int]
    """Always the workload's highest revision number: new revisions are only ever appended to it."""
    deleted: Mapped[bool]
    """Pruned from desired state; history stays and re-applying revives it with a new revision."""
    updated_at: Mapped[datetime]

    def to_state(self, current: RevisionRow) -> WorkloadState:
        """This pointer joined with its current revision, as a detached record."""
        return WorkloadState(
            name=self.name,
            kind=stored(self.kind, WORKLOAD_KINDS, "workload kind"),
            number=self.revision,
            spec=current.spec,
            placement=current.placement,
            content_hash=current.content_hash,
            project=current.project,
            updated_at=self.updated_at,
        )


class DocumentRow(Base):
    """A declared object other than a workload, overwritten in place when its content changes."""

    __tablename__ = "documents"

    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    spec: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]
    deleted: Mapped[bool]

    def to_state(self) -> DocumentState:
        """This row as a detached record."""
        return DocumentState(
            kind=self.kind,
            name=self.name,
            spec=self.spec,
            content_hash=self.content_hash,
            updated_at=self.updated_at,
        )


class ReplicaRow(Base):
    """One replica in the observed snapshot; the whole table is replaced at once by the observer."""

    __tablename__ = "replicas"
    __table_args__ = (CheckConstraint(in_list("state", REPLICA_STATES), name="state"),)

    id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    workload: Mapped[str] = mapped_column(String(NAME))
    cluster: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int]
    endpoint: Mapped[str | None] = mapped_column(String(2048))
    pid: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]

    def to_record(self) -> ReplicaRecord:
        """This row as a detached record."""
        return ReplicaRecord(
            id=self.id,
            workload=self.workload,
            cluster=self.cluster,
            role=self.role,
            revision=self.revision,
            endpoint=self.endpoint,
            pid=self.pid,
            state=stored(self.state, REPLICA_STATES, "replica state"),
            message=self.message,
            updated_at=self.updated_at,
        )


class EventRow(Base):
    """An append-only event; `id` orders events written at the same instant."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(in_list("level", EVENT_LEVELS), name="level"),
        Index(None, "time"),
        Index(None, "workload", "time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    time: Mapped[datetime]
    workload: Mapped[str | None] = mapped_column(String(NAME))
    cluster: Mapped[str | None] = mapped_column(String(NAME))
    level: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)

    def to_record(self) -> EventRecord:
        """This row as a detached record."""
        return EventRecord(
            id=self.id,
            time=self.time,
            workload=self.workload,
            cluster=self.cluster,
            level=stored(self.level, EVENT_LEVELS, "event level"),
            reason=self.reason,
            message=self.message,
        )


class TokenRow(Base):
    """An API token. Only `token_hash` (sha256 hex of the secret) is kept; the secret never is."""

    __tablename__ = "tokens"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        CheckConstraint(in_list("role", TOKEN_ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME))
    token_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    project: Mapped[str | None] = mapped_column(String(NAME))
    """None grants every project."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked: Mapped[bool]

    def to_record(self) -> TokenRecord:
        """This row as a detached record, without the hash."""
        return TokenRecord(
            id=self.id,
            name=self.name,
            role=stored(self.role, TOKEN_ROLES, "token role"),
            project=self.project,
            created_at=self.created_at,
            expires_at=self.expires_at,
            revoked=self.revoked,
        )


class LoadReportRow(Base):
    """One gateway's latest load figures for one (service, cluster); its rows are replaced every report."""

    __tablename__ = "load_reports"

    gateway_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    service: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    in_flight: Mapped[float] = mapped_column(Float)
    in_flight_mean: Mapped[float] = mapped_column(Float)
    rps: Mapped[float] = mapped_column(Float)
    error_rate: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)
    p50_ms: Mapped[float] = mapped_column(Float, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(index=True)
    """The store clock's time of the report; readers ignore rows older than they care for."""
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Prompt tokens of the window's LLM answers (also added to `token_usage`)."""
    completion_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    inter_token_ms: Mapped[float] = mapped_column(Float, server_default="0")
    """Mean time between the window's streamed tokens."""

    def to_record(self) -> LoadReport:
        """This row as a detached record."""
        return LoadReport(
            service=self.service,
            cluster=self.cluster,
            in_flight=self.in_flight,
            in_flight_mean=self.in_flight_mean,
            rps=self.rps,
            error_rate=self.error_rate,
            p99_ms=self.p99_ms,
            p50_ms=self.p50_ms,
            gateway_id=self.gateway_id,
            updated_at=self.updated_at,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            inter_token_ms=self.inter_token_ms,
        )
