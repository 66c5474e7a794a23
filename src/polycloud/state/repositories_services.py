"""What each use case of `polycloud.services` may do to the state store.

Each function takes the narrowest view that covers what it calls: the one named for its module, or a
block of `polycloud.state.repositories` (`audit.record` an `AuditWriter`, `governance.own_workloads` a
`WorkloadReader`), so that the views of its callers, in other modules too, satisfy it. `ApiStore` is
everything the API's routers hand to the use cases: the store an `ApiContext` carries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from polycloud.exchange import FlagCount
from polycloud.state.faults import FaultInput, FaultRecord
from polycloud.state.flag_revisions import FlagRevisionRecord
from polycloud.state.ledger import LedgerLine
from polycloud.state.lineage import LineageEventRecord
from polycloud.state.records import (
    ApplyResult,
    AuditRecord,
    AuditVerdict,
    DocumentInput,
    InferenceKeyRecord,
    RevisionRecord,
    SecretRecord,
    TokenRecord,
    WorkloadInput,
)
from polycloud.state.repositories import (
    ActiveRolloutReader,
    AnomalyReader,
    AuditWriter,
    ControlPlaneReader,
    DesiredReader,
    DocumentReader,
    EventFeed,
    EventReader,
    EventWriter,
    HistoryReader,
    IncidentReader,
    InferenceKeyReader,
    LiveFaultReader,
    LoadReader,
    ReplicaReader,
    RolloutRepository,
    TokensServedReader,
    WorkloadReader,
)
from polycloud.state.repositories_runtime import BudgetReader, FederationReader, SloReader
from polycloud.state.rollout_records import RolloutRecord, RolloutState

# ---------------------------------------------------------------------------------- who is calling


class TokenRepository(Protocol):
    """What the token use cases (`services/tokens.py`) need: create, list and revoke API tokens."""

    def create_token(
        self, *, name: str, role: str, project: str | None, expires_at: datetime | None
    ) -> tuple[str, TokenRecord]: ...
    def tokens(self) -> list[TokenRecord]: ...
    def revoke_token(self, token_id: int) -> None: ...


class SessionRepository(AuditWriter, DocumentReader, Protocol):
    """What `services/sessions.py` needs: tokens and browser sessions checked, login codes traded for
    sessions, each login audited, and the RoleBindings of people signed in with the OpenID Provider."""

    def authenticate(self, token: str) -> TokenRecord | None: ...
    def authenticate_web_session(self, secret: str) -> TokenRecord | None: ...
    def issue_login_code(self, token_id: int, ttl: timedelta) -> str: ...
    def redeem_login_code(self, code: str, ttl: timedelta) -> tuple[str, TokenRecord] | None: ...
    def open_web_session(self, token_id: int, ttl: timedelta) -> str: ...
    def end_web_session(self, secret: str) -> None: ...
    def open_person_session(self, person: dict[str, Any], ttl: timedelta) -> str: ...
    def authenticate_person_session(self, secret: str) -> dict[str, Any] | None: ...


class AuditTrailReader(Protocol):
    """Reading and verifying the whole audit chain (`services/audit.py`'s `trail` and `verify`)."""

    def audit_log(self, *, limit: int = ..., before: int | None = ...) -> list[AuditRecord]: ...
    def verify_audit(self) -> AuditVerdict: ...


# ------------------------------------------------------------------------------- the declared fleet


class FleetRepository(DesiredReader, HistoryReader, AuditWriter, Protocol):
    """What `FleetService` (`services/applying.py`) needs: the recorded workloads to diff against (and
    their revisions, which a flag may route to), the secret names a fleet may refer to, and the one
    transaction that records an apply; and what callers reach through its `store`: the recorded
    documents (a project's apply) and the audit trail."""

    def secrets(self) -> list[SecretRecord]: ...
    def apply(
        self,
        *,
        workloads: list[WorkloadInput],
        documents: list[DocumentInput],
        author: str,
        message: str,
        prune: bool = ...,
    ) -> ApplyResult: ...


class RollbackRepository(Protocol):
    """Appending a revision that restores an earlier one (`inspecting.rollback`)."""

    def rollback(
        self, workload: str, *, to: int | None, author: str, message: str = ...
    ) -> RevisionRecord: ...


class ScopedEventReader(WorkloadReader, HistoryReader, EventReader, Protocol):
    """What `governance.visible_events` needs: the events of the workloads a token may see."""


class StatusReader(
    WorkloadReader, ReplicaReader, ActiveRolloutReader, AnomalyReader, ControlPlaneReader, Protocol
):
    """What `inspecting.fleet_status` shows: services, replicas, rollouts, anomalies, the control plane."""


class OverviewReader(
    DesiredReader,
    ReplicaReader,
    EventFeed,
    LoadReader,
    TokensServedReader,
    ActiveRolloutReader,
    ControlPlaneReader,
    Protocol,
):
    """What the dashboard's overview (`services/overview.py`) reads: the whole fleet, its load and the
    LLM tokens it served today, the control plane, and where the event feed stands."""


class RolloutControlRepository(HistoryReader, EventWriter, RolloutRepository, Protocol):
    """What `services/rollouts.py` needs: list rollouts, and pause, resume or abort one (with its event)."""

    def control_rollout(self, service: str, *, to: RolloutState, message: str) -> RolloutRecord: ...


class FaultRequestRepository(DocumentReader, EventWriter, LiveFaultReader, Protocol):
    """What `services/faults.py` needs: record and clear faults for the leader, and follow them."""

    def add_fault(self, fault: FaultInput) -> FaultRecord: ...
    def clear_faults(self, cluster: str) -> list[int]: ...
    def faults(self, ids: list[int]) -> list[FaultRecord]: ...


class InferenceKeyRepository(WorkloadReader, AuditWriter, InferenceKeyReader, Protocol):
    """What `services/keys.py` needs: create, list and revoke keys of live services, audited."""

    def create_inference_key(
        self,
        *,
        service: str,
        name: str,
        rps: float,
        burst: int,
        monthly_quota: int | None,
        tokens_per_minute: int | None = ...,
        monthly_tokens: int | None = ...,
    ) -> tuple[str, InferenceKeyRecord]: ...
    def revoke_inference_key(self, key_id: int) -> InferenceKeyRecord: ...


# ------------------------------------------------------------------------------ cost, observability


class CostRepository(BudgetReader, DesiredReader, ReplicaReader, LoadReader, TokensServedReader, Protocol):
    """What the cost use cases (`services/costing.py`) read: the ledger, the declared fleet, its load,
    its replicas and the LLM tokens it served."""


class SpendReader(Protocol):
    """The ledger's hourly lines (`services/spending.py`)."""

    def cost_hours(self, since: datetime | None = ...) -> list[LedgerLine]: ...


class ObservationReader(SloReader, IncidentReader, AnomalyReader, Protocol):
    """What `services/observing.py` shows of the observer's work: SLOs, incidents and anomalies."""


# -------------------------------------------------------------------------------------------- API


class FlagRepository(DesiredReader, Protocol):
    """What `services/flags.py` needs: the live flags (and the services they route), their versions,
    setting one as a new version, and the gateways' evaluation counts."""

    def flag_history(self, name: str) -> list[FlagRevisionRecord]: ...
    def flag_counts(self, since_s: float) -> list[FlagCount]: ...
    def put_flag(
        self, name: str, document: dict[str, Any], content_hash: str, *, author: str, message: str
    ) -> FlagRevisionRecord: ...


class LineageRepository(Protocol):
    """What `services/lineage.py` needs: the kept OpenLineage events."""

    def lineage_events(
        self, job_name: str | None = None, event_type: str | None = None
    ) -> list[LineageEventRecord]: ...


class ApiStore(
    LineageRepository,
    FlagRepository,
    SessionRepository,
    TokenRepository,
    AuditTrailReader,
    InferenceKeyRepository,
    FaultRequestRepository,
    RolloutControlRepository,
    RollbackRepository,
    ScopedEventReader,
    StatusReader,
    OverviewReader,
    CostRepository,
    SpendReader,
    ObservationReader,
    FederationReader,
    Protocol,
):
    """Everything the API's routers hand to the use cases: the store an `ApiContext` carries."""
