"""The values that cross the state store's boundary: inputs callers build and records the store returns.

All are frozen dataclasses holding plain JSON-ready data (specs and placements are `dict`/`list` trees of
str, int, float, bool and None). Inputs validate themselves on construction and raise `UserError`, so a bad
value never reaches a transaction. Records are snapshots: changing one changes nothing in the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, get_args

from polycloud.errors import PermanentError, UserError
from polycloud.state.hashing import canonical_json

WorkloadKind = Literal["Service", "Job"]
ReplicaState = Literal["starting", "ready", "failed", "stopping"]
EventLevel = Literal["info", "warning", "error"]
TokenRole = Literal["viewer", "deployer", "admin"]
ChangeAction = Literal["created", "updated", "deleted", "unchanged"]

WORKLOAD_KINDS: tuple[WorkloadKind, ...] = get_args(WorkloadKind)
REPLICA_STATES: tuple[ReplicaState, ...] = get_args(ReplicaState)
EVENT_LEVELS: tuple[EventLevel, ...] = get_args(EventLevel)
TOKEN_ROLES: tuple[TokenRole, ...] = get_args(TokenRole)

_HASH = re.compile(r"[0-9a-f]{64}")
_REASON = re.compile(r"[A-Z][A-Za-z0-9]{0,63}")
_L = TypeVar("_L", bound=str)


def one_of(value: str, allowed: tuple[_L, ...], what: str) -> _L:
    """Narrow `value` to one of `allowed`, or raise `UserError` naming `what` and the choices."""
    for choice in allowed:
        if choice == value:
            return choice
    raise UserError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def stored(value: str, allowed: tuple[_L, ...], what: str) -> _L:
    """Narrow a value read back from the database; a mismatch means the database is corrupt."""
    for choice in allowed:
        if choice == value:
            return choice
    raise PermanentError(f"state database holds an unknown {what} {value!r}")


def _require_name(value: str, what: str) -> None:
    if not value or not value.strip():
        raise UserError(f"{what} must not be empty")


def _require_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise UserError(f"{what} must be timezone-aware (UTC), got {value.isoformat()}")


def _require_hash(value: str, what: str) -> None:
    if not _HASH.fullmatch(value):
        raise UserError(
            f"{what} must be a sha256 hex digest (see polycloud.state.content_hash), not {value!r}"
        )


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkloadInput:
    """One Service or Job as the caller wants it: the normalised document and where it was placed."""

    name: str
    kind: WorkloadKind
    spec: dict[str, Any]
    """The normalised document; plain JSON."""
    content_hash: str
    """Decides "changed": a new revision is recorded only when it differs from the current one."""
    placement: list[dict[str, Any]]
    """Assignment dicts as in `plan --json` (`cluster`, `role`, `replicas`, ...)."""
    project: str | None = None
    """From the document's labels; tokens scoped to a project see only its workloads."""

    def __post_init__(self) -> None:
        _require_name(self.name, "workload name")
        one_of(self.kind, WORKLOAD_KINDS, f"kind of workload {self.name!r}")
        _require_hash(self.content_hash, f"content_hash of workload {self.name!r}")
        canonical_json(self.spec)
        canonical_json(self.placement)


@dataclass(frozen=True)
class DocumentInput:
    """Any other declared object (Cluster, Dataset, Policy, ...), versioned by its content hash only."""

    kind: str
    name: str
    spec: dict[str, Any]
    content_hash: str

    def __post_init__(self) -> None:
        _require_name(self.kind, "document kind")
        _require_name(self.name, f"name of {self.kind}")
        if self.kind in WORKLOAD_KINDS:
            raise UserError(f"{self.kind} {self.name!r} is a workload; pass it as a WorkloadInput")
        _require_hash(self.content_hash, f"content_hash of {self.kind} {self.name!r}")
        canonical_json(self.spec)


@dataclass(frozen=True)
class ReplicaRecord:
    """One replica as last observed; the observed snapshot is a list of these (input and output alike)."""

    id: str
    """Unique across the fleet, e.g. "fraud-aws-use1-0"."""
    workload: str
    cluster: str
    role: str
    """The plan's role: "active", "standby" or "burst"."""
    revision: int
    """The workload revision this replica runs."""
    endpoint: str | None
    pid: int | None
    """The replica's process on the local driver; None elsewhere."""
    state: ReplicaState
    message: str = ""
    updated_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        _require_name(self.id, "replica id")
        one_of(self.state, REPLICA_STATES, f"state of replica {self.id!r}")
        _require_aware(self.updated_at, f"updated_at of replica {self.id!r}")


@dataclass(frozen=True)
class EventInput:
    """Something worth telling the operator; `time` defaults to the store's clock."""

    level: EventLevel
    reason: str
    """Short CamelCase, e.g. "ReplicaStarted"."""
    message: str
    workload: str | None = None
    cluster: str | None = None
    time: datetime | None = None

    def __post_init__(self) -> None:
        one_of(self.level, EVENT_LEVELS, "event level")
        if not _REASON.fullmatch(self.reason):
            raise UserError(
                f"event reason must be short CamelCase like 'ReplicaStarted', not {self.reason!r}"
            )
        _require_aware(self.time, "event time")


@dataclass(frozen=True)
class EventRecord:
    """A stored event; `id` grows with insertion order."""

    id: int
    time: datetime
    workload: str | None
    cluster: str | None
    level: EventLevel
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        """The event as the API shows it."""
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "level": self.level,
            "reason": self.reason,
            "workload": self.workload,
            "cluster": self.cluster,
            "message": self.message,
        }


@dataclass(frozen=True)
class RevisionRecord:
    """One immutable revision of a workload."""

    workload: str
    kind: WorkloadKind
    number: int
    """1, 2, 3... per workload, never reused."""
    spec: dict[str, Any]
    content_hash: str
    placement: list[dict[str, Any]]
    project: str | None
    author: str
    message: str
    created_at: datetime


@dataclass(frozen=True)
class WorkloadState:
    """A live (not deleted) workload with the content of its current revision."""

    name: str
    kind: WorkloadKind
    number: int
    """The current revision number."""
    spec: dict[str, Any]
    placement: list[dict[str, Any]]
    content_hash: str
    project: str | None
    updated_at: datetime

    @classmethod
    def of_revision(cls, r: RevisionRecord) -> WorkloadState:
        """The workload as revision `r` declared it (an older revision a canary or a flag runs)."""
        return cls(r.workload, r.kind, r.number, r.spec, r.placement, r.content_hash, r.project, r.created_at)


@dataclass(frozen=True)
class DocumentState:
    """A live (not deleted) declared object."""

    kind: str
    name: str
    spec: dict[str, Any]
    content_hash: str
    updated_at: datetime


@dataclass(frozen=True)
class TokenRecord:
    """An API token without its secret (only a sha256 of it is ever stored)."""

    id: int
    name: str
    role: TokenRole
    project: str | None
    """None means every project."""
    created_at: datetime
    expires_at: datetime | None
    revoked: bool


@dataclass(frozen=True)
class WorkloadChange:
    """What `Store.apply` did to one workload."""

    name: str
    kind: WorkloadKind
    action: ChangeAction
    """"created" also covers a deleted workload that came back."""
    revision: int
    """The current revision after apply (for "deleted": the last one it had)."""


@dataclass(frozen=True)
class DocumentChange:
    """What `Store.apply` did to one declared object."""

    kind: str
    name: str
    action: ChangeAction


@dataclass(frozen=True)
class ApplyResult:
    """Everything one `Store.apply` did, workloads and documents sorted by name."""

    workloads: list[WorkloadChange]
    documents: list[DocumentChange]

    def _with(self, action: ChangeAction) -> list[WorkloadChange]:
        return [w for w in self.workloads if w.action == action]

    @property
    def created(self) -> list[WorkloadChange]:
        """Workloads recorded for the first time, or revived after deletion."""
        return self._with("created")

    @property
    def updated(self) -> list[WorkloadChange]:
        """Workloads whose content changed, with their new revision."""
        return self._with("updated")

    @property
    def deleted(self) -> list[WorkloadChange]:
        """Workloads pruned because the input no longer declares them."""
        return self._with("deleted")

    @property
    def unchanged(self) -> list[WorkloadChange]:
        """Workloads whose content hash matched their current revision."""
        return self._with("unchanged")

    @property
    def changed(self) -> bool:
        """True when anything at all was written."""
        return any(w.action != "unchanged" for w in self.workloads) or any(
            d.action != "unchanged" for d in self.documents
        )


AuditOutcome = Literal["ok", "denied", "failed"]
AUDIT_OUTCOMES: tuple[AuditOutcome, ...] = get_args(AuditOutcome)
TamperKind = Literal["edited", "deleted", "inserted", "reordered"]


@dataclass(frozen=True)
class AuditInput:
    """One audit entry as a caller describes it; the store adds its sequence number, time and hashes."""

    actor: str
    """Who: a token as "NAME#ID", or "anonymous" for a failed authentication."""
    action: str
    """What, as "noun.verb": "apply", "token.create", "auth.denied", "secret.set"..."""
    target: str = ""
    """What it was done to: a workload, a token id, a cluster, a request path."""
    outcome: AuditOutcome = "ok"
    revision: int | None = None
    """The workload revision the action produced or restored, when there is one."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Plain JSON context (never a secret's value)."""

    def __post_init__(self) -> None:
        _require_name(self.actor, "audit actor")
        _require_name(self.action, "audit action")
        one_of(self.outcome, AUDIT_OUTCOMES, "audit outcome")
        canonical_json(self.detail)  # a detail that cannot be hashed must fail here, not in a transaction


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit hash chain as stored."""

    seq: int
    time: datetime
    actor: str
    action: str
    target: str
    outcome: AuditOutcome
    revision: int | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditBreak:
    """The first place where the stored audit chain differs from what was appended."""

    seq: int
    """The sequence number of the first bad (or missing) entry."""
    kind: TamperKind
    reason: str


@dataclass(frozen=True)
class AuditVerdict:
    """The result of walking the whole audit chain."""

    entries: int
    head_seq: int
    head_hash: str
    broken: AuditBreak | None

    @property
    def intact(self) -> bool:
        return self.broken is None


@dataclass(frozen=True)
class SealedSecret:
    """A secret as stored: ciphertext only (see `polycloud.secrets` for the envelope)."""

    name: str
    project: str | None
    """None for a fleet-wide secret."""
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    key_id: str
    version: int = 0
    """Set by the store (0 on input)."""


@dataclass(frozen=True)
class SecretRecord:
    """What may be shown about a secret: never its value, nor its ciphertext."""

    name: str
    project: str | None
    version: int
    key_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class InferenceKeyRecord:
    """A gateway inference key without its secret (only a sha256 of it is ever stored)."""

    id: int
    service: str
    name: str
    prefix: str
    rps: float
    burst: int
    monthly_quota: int | None
    created_at: datetime
    revoked: bool
    used_this_month: int = 0
    """Requests this calendar month (UTC), every gateway's."""
    tokens_per_minute: int | None = None
    monthly_tokens: int | None = None
    tokens_this_month: int = 0
    """LLM tokens (prompt and completion) this calendar month (UTC), every gateway's."""
