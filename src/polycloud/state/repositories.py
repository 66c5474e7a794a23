"""Small typed views of the state store, one per consumer, so that each part depends on the few methods
it uses rather than on the whole `Store` (which implements every one of them).

A test can hand a consumer a fake of its protocol alone; a reader sees at the signature what a part
may do to the database: the gateway, for instance, reads routes and keys and writes its own reports
and heartbeat, and can do nothing else.

This module holds the building blocks (each a method or two of `Store` that several consumers share)
and the views of the gateway and of a server's leadership. The views of the loops are in
`repositories_runtime`, those of the use cases in `repositories_services`; each view is a composition
of blocks plus the methods only its consumer calls, and every `Store` method is declared once. A view
lists its bases in the order they are defined in these modules, composed views before blocks: in any
other order Python may find no consistent method resolution order once views are combined. Only the
composition roots (`server/`, `api/`, `cli/`, `drills/`, the gateway's `running.py`) name `Store` itself;
`tests/test_architecture.py` checks that `controller/`, `obs/`, `services/` and `gateway/` do not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from polycloud.exchange import FlagCount, KeyGrant, KeyLoad, LoadReport, RevisionCounts
from polycloud.state.control import Lease, MemberInput, MemberRecord
from polycloud.state.faults import FaultRecord
from polycloud.state.job_records import JobRunRecord
from polycloud.state.ledger import LedgerLine
from polycloud.state.loads import TokensServed
from polycloud.state.obs_records import AnomalyRecord, IncidentRecord
from polycloud.state.records import (
    AuditInput,
    AuditRecord,
    DocumentState,
    EventInput,
    EventRecord,
    InferenceKeyRecord,
    ReplicaRecord,
    RevisionRecord,
    SealedSecret,
    SecretRecord,
    WorkloadState,
)
from polycloud.state.rollout_records import RolloutRecord, RolloutState

# ---------------------------------------------------------------------------------- desired state


class WorkloadReader(Protocol):
    """The current workloads (every one not deleted, at its current revision)."""

    def current(self) -> list[WorkloadState]: ...


class DocumentReader(Protocol):
    """The declared documents that are not workloads (clusters, datasets, policies)."""

    def documents(self, kind: str | None = ...) -> list[DocumentState]: ...


class DesiredReader(WorkloadReader, DocumentReader, Protocol):
    """The whole declared fleet: workloads and documents."""


class HistoryReader(Protocol):
    """Every revision of a workload (and whether it exists at all)."""

    def history(self, workload: str) -> list[RevisionRecord]: ...


class RevisionReader(Protocol):
    """One revision of a workload."""

    def revision(self, workload: str, number: int) -> RevisionRecord: ...


# --------------------------------------------------------------------------- observed state, events


class ReplicaReader(Protocol):
    """The observed replicas (the reconciler's last snapshot)."""

    def replicas(self) -> list[ReplicaRecord]: ...


class EventWriter(Protocol):
    """Appending events to the fleet's timeline."""

    def add_events(self, events: list[EventInput]) -> None: ...


class EventReader(Protocol):
    """The newest events, of one workload or cluster or of all."""

    def events(
        self, *, workload: str | None = ..., cluster: str | None = ..., limit: int = ...
    ) -> list[EventRecord]: ...


class EventFeed(Protocol):
    """Events in the order they were stored, from a cursor (the observer's and the dashboard's feed)."""

    def events_after(self, after_id: int, *, limit: int = ...) -> list[EventRecord]: ...
    def last_event_id(self) -> int: ...


class LoadReader(Protocol):
    """The gateways' fresh load reports."""

    def load(self, max_age_s: float) -> list[LoadReport]: ...


# --------------------------------------------------------------------------------- rollouts, audit


class ActiveRolloutReader(Protocol):
    """The rollouts in progress (progressing or paused)."""

    def active_rollouts(self) -> list[RolloutRecord]: ...


class RolloutRepository(Protocol):
    """What the controller and an operator both do to rollouts: read the latest, and end one."""

    def rollouts(self, service: str | None = ..., *, limit: int = ...) -> list[RolloutRecord]: ...
    def end_rollout(
        self,
        service: str,
        *,
        state: RolloutState,
        message: str,
        author: str,
        rollout_id: int | None = ...,
    ) -> RolloutRecord: ...


class AuditWriter(Protocol):
    """Appending to the audit hash chain."""

    def audit(self, entry: AuditInput) -> AuditRecord: ...


# -------------------------------------------------------------------- jobs, cost, observability, keys


class JobRunReader(Protocol):
    """Training job runs with their attempts."""

    def job_runs(self, job: str | None = ...) -> list[JobRunRecord]: ...


class CostLineReader(Protocol):
    """The cost ledger's accrued lines."""

    def cost_lines(self, since: datetime | None = ...) -> list[LedgerLine]: ...


class TokensServedReader(Protocol):
    """LLM tokens served per (service, cluster), summed from the gateways' load reports."""

    def tokens_served(self, since: datetime | None = ...) -> list[TokensServed]: ...


class IncidentReader(Protocol):
    """Incidents with their timelines."""

    def incidents(self, *, state: str | None = ..., limit: int = ...) -> list[IncidentRecord]: ...


class AnomalyReader(Protocol):
    """Recent anomalies."""

    def anomalies(self, since_s: float, *, limit: int = ...) -> list[AnomalyRecord]: ...


class InferenceKeyReader(Protocol):
    """The gateway inference keys with this month's usage (never the keys themselves)."""

    def inference_keys(self, service: str | None = ...) -> list[InferenceKeyRecord]: ...


# ------------------------------------------------------------------------------------ control plane


class ControlPlaneReader(Protocol):
    """Who leads, and which servers and gateways were heard from lately."""

    def lease(self, name: str = ...) -> Lease | None: ...
    def members(self, max_age_s: float) -> list[MemberRecord]: ...


class Membership(Protocol):
    """A member's heartbeat (servers and gateways)."""

    def heartbeat(self, member: MemberInput) -> None: ...
    def leave(self, member_id: str) -> None: ...


class LeaseRepository(Membership, Protocol):
    """What a server's `Leadership` needs: the leader lease and its heartbeat."""

    def acquire_lease(self, holder: str, ttl_s: float, name: str = ...) -> Lease: ...
    def release_lease(self, holder: str, epoch: int, name: str = ...) -> None: ...


class LiveFaultReader(Protocol):
    """The injected faults wanted now, or applied and not yet taken back."""

    def live_faults(self) -> list[FaultRecord]: ...


class FaultRepository(LiveFaultReader, Protocol):
    """What the leader's `FaultSync` needs: the faults to carry, and where to note what it did."""

    def mark_faults(self, *, applied: list[int], released: list[int], consumed: list[int]) -> None: ...


# ------------------------------------------------------------------------------------------ gateway


class RouteRepository(DesiredReader, ReplicaReader, ActiveRolloutReader, Protocol):
    """What a gateway reads to build its route table: replicas, workloads, clusters and rollouts."""


class ReportRepository(Membership, Protocol):
    """What a gateway writes: its load, per-revision and per-key reports, and its heartbeat."""

    def report_load(self, gateway_id: str, rows: list[LoadReport]) -> None: ...
    def report_revision_counts(self, gateway_id: str, rows: list[RevisionCounts]) -> None: ...
    def report_key_loads(self, gateway_id: str, rows: list[KeyLoad]) -> None: ...
    def add_flag_counts(self, gateway_id: str, counts: list[FlagCount]) -> None: ...


class KeyRepository(Protocol):
    """What a gateway's key guard reads and flushes: key grants and usage counts."""

    def key_grants(self) -> list[KeyGrant]: ...
    def add_key_usage(
        self, month: str, counts: dict[int, int], tokens: dict[int, int] | None = ...
    ) -> None: ...


# ------------------------------------------------------------------------------ certificates (mTLS)


class TrustReader(Protocol):
    """The fleet CA certificates (public), kept as shared settings `fleet-ca/<n>`."""

    def control_settings_like(self, prefix: str) -> dict[str, str]: ...


class CertificateRequester(TrustReader, Protocol):
    """What a gateway needs for its certificate: ask with a signing request, read the grant."""

    def request_certificate(self, holder: str, request: str) -> None: ...
    def granted_certificate(self, holder: str) -> tuple[str, str | None] | None: ...


class AuthorityRepository(TrustReader, Protocol):
    """What the fleet CA needs: its certificates and sealed keys, and the requests to grant."""

    def settle_control_setting(self, name: str, value: str) -> str: ...
    def put_secret(self, secret: SealedSecret) -> SecretRecord: ...
    def sealed_secrets(self) -> list[SealedSecret]: ...
    def pending_certificates(self) -> list[tuple[str, str]]: ...
    def grant_certificate(self, holder: str, request: str, certificate: str) -> None: ...
