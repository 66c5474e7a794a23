"""The ORM tables of the state store. Migrations in `migrations/versions/` must match these exactly.

Desired state is `revisions` (immutable history) plus `workloads` (which revision is current) and
`documents` (other declared objects). Observed state is `replicas` (a snapshot replaced wholesale),
`events` (append-only) and `load_reports` (each gateway's latest load figures). `tokens` holds API
credentials as sha256 digests only.
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
from polycloud.state.job_records import ATTEMPT_STATES, JOB_RUN_STATES
from polycloud.state.records import (
    AUDIT_OUTCOMES,
    EVENT_LEVELS,
    REPLICA_STATES,
    TOKEN_ROLES,
    WORKLOAD_KINDS,
    AuditRecord,
    DocumentState,
    EventRecord,
    LoadReport,
    ReplicaRecord,
    RevisionRecord,
    TokenRecord,
    WorkloadState,
    stored,
)
from polycloud.state.rollout_records import ROLLOUT_STATES, RevisionCounts, RolloutRecord

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


def _in(column: str, values: tuple[str, ...]) -> str:
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
        CheckConstraint(_in("kind", WORKLOAD_KINDS), name="kind"),
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
        CheckConstraint(_in("kind", WORKLOAD_KINDS), name="kind"),
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
    __table_args__ = (CheckConstraint(_in("state", REPLICA_STATES), name="state"),)

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
        CheckConstraint(_in("level", EVENT_LEVELS), name="level"),
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
        CheckConstraint(_in("role", TOKEN_ROLES), name="role"),
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
    updated_at: Mapped[datetime] = mapped_column(index=True)
    """The store clock's time of the report; readers ignore rows older than they care for."""

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
            gateway_id=self.gateway_id,
            updated_at=self.updated_at,
        )


class RolloutRow(Base):
    """One canary rollout; the controller updates it as steps pass, and it stays as history."""

    __tablename__ = "rollouts"
    __table_args__ = (CheckConstraint(_in("state", ROLLOUT_STATES), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(NAME), index=True)
    baseline: Mapped[int]
    canary: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    steps: Mapped[list[int]] = mapped_column(JSON)
    step: Mapped[int]
    step_started_at: Mapped[datetime | None]
    window: Mapped[dict[str, Any]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def to_record(self) -> RolloutRecord:
        """This row as a detached record."""
        return RolloutRecord(
            id=self.id,
            service=self.service,
            baseline=self.baseline,
            canary=self.canary,
            state=stored(self.state, ROLLOUT_STATES, "rollout state"),
            steps=tuple(int(s) for s in self.steps),
            step=self.step,
            step_started_at=self.step_started_at,
            window=dict(self.window),
            figures=dict(self.figures),
            message=self.message,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class RevisionCountsRow(Base):
    """One gateway's cumulative attempt counts for one (service, revision); replaced every report."""

    __tablename__ = "revision_counts"

    gateway_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    service: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    revision: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    attempts: Mapped[int]
    failures: Mapped[int]
    buckets: Mapped[list[int]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(index=True)

    def to_record(self) -> RevisionCounts:
        """This row as a detached record."""
        return RevisionCounts(
            service=self.service,
            revision=self.revision,
            attempts=self.attempts,
            failures=self.failures,
            buckets=tuple(int(b) for b in self.buckets),
            gateway_id=self.gateway_id,
            updated_at=self.updated_at,
        )


class AuditRow(Base):
    """One entry of the audit hash chain: `hash` = sha256(`prev_hash` + canonical JSON of the entry).

    `seq` numbers entries 1, 2, 3... and is part of the hashed entry, so no entry can be moved, dropped
    or slipped in without breaking a hash or a link (see `polycloud.state.audit`).
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="outcome"),
        Index(None, "time"),
    )

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int | None]
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def to_record(self) -> AuditRecord:
        """This row as a detached record."""
        return AuditRecord(
            seq=self.seq,
            time=self.time,
            actor=self.actor,
            action=self.action,
            target=self.target,
            outcome=stored(self.outcome, AUDIT_OUTCOMES, "audit outcome"),
            revision=self.revision,
            detail=self.detail,
            prev_hash=self.prev_hash,
            hash=self.hash,
        )


class AuditHeadRow(Base):
    """The chain's newest (seq, hash), written with every append: a cut-off tail shows up against it."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))


class SecretRow(Base):
    """An envelope-encrypted secret: the value sealed by its own data key, the data key by a master key.

    Nothing here is plaintext: `wrapped_key` opens only with the master key named by `key_id`, and both
    layers are bound to (project, name), so a row copied over another does not decrypt.
    """

    __tablename__ = "secrets"
    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)

    project: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    """'' for a fleet-wide secret (a primary key column cannot be NULL)."""
    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    wrapped_key: Mapped[bytes]
    nonce: Mapped[bytes]
    ciphertext: Mapped[bytes]
    """AES-GCM ciphertext of the value, tag included."""
    key_id: Mapped[str] = mapped_column(String(64))
    """Which master key wrapped `wrapped_key`."""
    version: Mapped[int]
    """1 at creation, + 1 at each new value (a new value rolls the replicas that use it)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InferenceKeyRow(Base):
    """A gateway inference key of one service. Only `key_hash` (sha256 hex of the key) is kept."""

    __tablename__ = "inference_keys"
    __table_args__ = (
        UniqueConstraint("key_hash"),
        Index(None, "service"),
        CheckConstraint("rps > 0", name="rps_positive"),
        CheckConstraint("burst >= 1", name="burst_positive"),
        CheckConstraint("monthly_quota IS NULL OR monthly_quota >= 1", name="quota_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    key_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    """The key's first characters, so that people can tell keys apart without the secret."""
    rps: Mapped[float] = mapped_column(Float)
    """Token-bucket refill rate, requests per second."""
    burst: Mapped[int]
    """Token-bucket size: requests allowed at once after a quiet spell."""
    monthly_quota: Mapped[int | None]
    """Requests per calendar month (UTC); None for no quota."""
    created_at: Mapped[datetime]
    revoked: Mapped[bool]


class KeyUsageRow(Base):
    """Requests counted by the gateways for one inference key in one calendar month (UTC)."""

    __tablename__ = "key_usage"
    __table_args__ = (ForeignKeyConstraint(["key_id"], ["inference_keys.id"]),)

    key_id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    """"YYYY-MM"."""
    requests: Mapped[int]
    updated_at: Mapped[datetime]


class JobRunRow(Base):
    """One run of a job revision; `state` moves pending → running → succeeded | failed | cancelled."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job", "revision"),
        CheckConstraint(_in("state", JOB_RUN_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(NAME))
    revision: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    cluster: Mapped[str | None] = mapped_column(String(NAME))
    bytes_moved: Mapped[int] = mapped_column(BigInteger)
    """Checkpoint bytes carried between clusters, over every attempt."""
    egress_usd: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JobAttemptRow(Base):
    """One process start of a run on one cluster; `ended_at` is set once, when it ends."""

    __tablename__ = "job_attempts"
    __table_args__ = (
        ForeignKeyConstraint(["run_id"], ["job_runs.id"]),
        CheckConstraint(_in("state", ATTEMPT_STATES), name="state"),
    )

    run_id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    cluster: Mapped[str] = mapped_column(String(NAME))
    pid: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16))
    hourly_usd: Mapped[float] = mapped_column(Float)
    nodes: Mapped[int]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    message: Mapped[str] = mapped_column(Text)


LEDGER_CATEGORIES = ("compute", "egress")
LEDGER_SOURCES = ("replicas", "dataset-reads", "job-attempts", "job-datasets", "checkpoints")


class LedgerRow(Base):
    """Cost accrued in one UTC hour by one (workload, revision, cluster, category, source).

    The accountant adds to the row of the current hour on each pass, so the table grows by a few rows
    per workload and hour, never by one per request or per pass (see `polycloud.state.ledger`).
    """

    __tablename__ = "cost_ledger"
    __table_args__ = (
        UniqueConstraint("hour", "workload", "revision", "cluster", "category", "source"),
        CheckConstraint(_in("category", LEDGER_CATEGORIES), name="category"),
        CheckConstraint(_in("source", LEDGER_SOURCES), name="source"),
        Index(None, "hour"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    hour: Mapped[datetime]
    """Start of the UTC hour the cost accrued in."""
    workload: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int]
    cluster: Mapped[str] = mapped_column(String(NAME))
    provider: Mapped[str] = mapped_column(String(NAME))
    category: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    labels: Mapped[str] = mapped_column(Text)
    """The revision's `metadata.labels` as canonical JSON (text, so that it can be grouped on)."""
    project: Mapped[str | None] = mapped_column(String(NAME))
    quantity: Mapped[float] = mapped_column(Float)
    """Replica-seconds (services), node-seconds (jobs) or GB (egress)."""
    usd: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class LedgerCursorRow(Base):
    """Until when time-based costs have been accrued; shared by every accountant of the database."""

    __tablename__ = "cost_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    accrued_until: Mapped[datetime]


class BudgetAlertRow(Base):
    """A budget threshold crossed in a month: recorded once, with its BudgetAlert event."""

    __tablename__ = "budget_alerts"

    policy: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    label: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    value: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    """"YYYY-MM" (UTC)."""
    threshold: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    """50, 80 or 100 (% of the budget)."""
    spend_usd: Mapped[float] = mapped_column(Float)
    limit_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]


class SliMinuteRow(Base):
    """Requests, errors and p99 of one (service, cluster, source) in one UTC minute, written by the
    control plane's observer from the gateways' load reports ("traffic") and synthetic probes ("probe")."""

    __tablename__ = "sli_minutes"
    __table_args__ = (CheckConstraint("source IN ('traffic', 'probe')", name="source"), Index(None, "minute"))

    service: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    requests: Mapped[float] = mapped_column(Float)
    errors: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)


class IncidentRow(Base):
    """An incident opened by a failover, a rollback, an SLO alert or a budget alert."""

    __tablename__ = "incidents"
    __table_args__ = (CheckConstraint("state IN ('open', 'resolved')", name="state"), Index(None, "state"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    service: Mapped[str | None] = mapped_column(String(NAME))
    cluster: Mapped[str | None] = mapped_column(String(NAME))
    state: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class IncidentEventRow(Base):
    """An event on an incident's timeline."""

    __tablename__ = "incident_events"
    __table_args__ = (
        ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        ForeignKeyConstraint(["event_id"], ["events.id"]),
    )

    incident_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class AnomalyRow(Base):
    """A signal of one (service, cluster) that left its robust baseline."""

    __tablename__ = "anomalies"
    __table_args__ = (Index(None, "time"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    time: Mapped[datetime]
    service: Mapped[str] = mapped_column(String(NAME))
    cluster: Mapped[str] = mapped_column(String(NAME))
    signal: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
