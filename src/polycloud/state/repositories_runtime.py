"""What each loop of the control plane (`polycloud.controller`, `polycloud.obs`) may do to the state store.

Each view composes the shared blocks of `polycloud.state.repositories` with the methods only its loop
calls; a loop that hands its store on (the reconciler to its rollout manager and fault sync, the
observer to its incident tracker and SLO report) composes the views of those parts. The composition
root hands the loops that act a `Store.fenced(...)` view, which satisfies these as the plain `Store` does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from polycloud.exchange import KeyLoad, RevisionCounts
from polycloud.state.job_records import AttemptInput, AttemptState, JobRunRecord, JobRunState
from polycloud.state.ledger import BudgetAlertInput, RateAccrual, TotalAccrual
from polycloud.state.lineage import LineageEventInput, LineageEventRecord
from polycloud.state.obs_records import AnomalyInput, SliMinute
from polycloud.state.records import ReplicaRecord
from polycloud.state.repositories import (
    ActiveRolloutReader,
    AuditWriter,
    CostLineReader,
    DesiredReader,
    DocumentReader,
    EventFeed,
    EventReader,
    EventWriter,
    FaultRepository,
    IncidentReader,
    InferenceKeyReader,
    JobRunReader,
    LoadReader,
    ReplicaReader,
    RevisionReader,
    RolloutRepository,
    WorkloadReader,
)
from polycloud.state.rollout_records import RolloutRecord

# ------------------------------------------------------------------------------------ the controller


class RolloutStore(RevisionReader, ActiveRolloutReader, RolloutRepository, AuditWriter, Protocol):
    """What the controller's `RolloutManager` needs: start, judge and end canary rollouts, with the
    gateways' per-revision counts as evidence and the audit trail as the record of its decisions."""

    def start_rollout(
        self, service: str, *, baseline: int, canary: int, steps: list[int]
    ) -> RolloutRecord: ...
    def progress_rollout(self, rollout_id: int, **changes: Any) -> RolloutRecord | None: ...
    def revision_counts(self, service: str, max_age_s: float) -> list[RevisionCounts]: ...


class ReconcilerStore(
    RolloutStore, FaultRepository, DesiredReader, ReplicaReader, EventWriter, LoadReader, Protocol
):
    """What the `Reconciler` needs (its rollout manager's and fault sync's needs included): the declared
    fleet and the load to plan from, and the observed snapshot and events it records."""

    def replace_replicas(self, replicas: list[ReplicaRecord]) -> None: ...


class JobStore(DesiredReader, EventWriter, JobRunReader, Protocol):
    """What the `JobController` needs: the declared jobs and clusters, and their runs and attempts."""

    def job_run(self, job: str, revision: int, cluster: str) -> JobRunRecord: ...
    def add_job_attempt(self, run_id: int, attempt: AttemptInput) -> None: ...
    def end_job_attempt(
        self,
        run_id: int,
        number: int,
        *,
        state: AttemptState,
        run_state: JobRunState,
        exit_code: int | None = ...,
        message: str = ...,
    ) -> None: ...
    def set_job_state(self, run_id: int, state: JobRunState, message: str = ...) -> bool: ...


class BudgetReader(DocumentReader, CostLineReader, Protocol):
    """What budgets are computed from: the Policy documents and this month's ledger lines."""


class AccountingStore(BudgetReader, RevisionReader, ReplicaReader, JobRunReader, Protocol):
    """What the `Accountant` needs: what runs (replicas, job runs and their revisions) to accrue the
    ledger, and the budgets to raise alerts on."""

    def accrue_cost(
        self, rates: list[RateAccrual], totals: list[TotalAccrual], *, max_gap_s: float
    ) -> float: ...
    def record_budget_alerts(self, alerts: list[BudgetAlertInput]) -> list[BudgetAlertInput]: ...


# -------------------------------------------------------------------------------------- the observer


class FederationReader(DocumentReader, ReplicaReader, Protocol):
    """What the fleet-wide `/metrics` scrapes: the clusters' documents and the replicas' endpoints."""


class IncidentStore(EventReader, IncidentReader, Protocol):
    """What the `IncidentTracker` needs: the open incidents, events to lead one, and its timelines."""

    def open_incident(
        self, kind: str, title: str, event_ids: list[int], *, service: str | None, cluster: str | None
    ) -> int: ...
    def attach_incident_events(
        self, incident_id: int, event_ids: list[int], *, resolve: bool = ...
    ) -> None: ...


class SloReader(WorkloadReader, Protocol):
    """What an SLO report reads: the services' objectives and their SLI minutes and totals."""

    def sli_minutes(self, since: datetime) -> list[SliMinute]: ...
    def sli_totals(
        self, since_s: float, objectives: dict[str, float]
    ) -> list[tuple[str, str, str, float, float, float]]: ...


class ObserverStore(
    IncidentStore, SloReader, ReplicaReader, EventWriter, EventFeed, LoadReader, InferenceKeyReader, Protocol
):
    """What the `Observer` needs (its incident tracker's and SLO report's needs included): load and
    key-load reports in, SLI minutes, anomalies and alert events out, and the events to follow."""

    def key_loads(self, max_age_s: float) -> list[KeyLoad]: ...
    def put_sli_minutes(self, rows: list[SliMinute]) -> None: ...
    def add_anomalies(self, anomalies: list[AnomalyInput]) -> None: ...
    def forget_observations(self, older_than_s: float) -> None: ...


# ------------------------------------------------------------------------------------ lineage


class LineageRecorderStore(DesiredReader, RevisionReader, ReplicaReader, JobRunReader, Protocol):
    """What `controller/lineage.py` needs: the declared fleet, its revisions, replicas and job runs to
    derive OpenLineage events from, and the events kept so far."""

    def lineage_keys(self) -> set[tuple[str, str]]: ...
    def add_lineage_events(self, events: list[LineageEventInput]) -> int: ...
    def open_lineage_runs(self, kind: str) -> list[LineageEventRecord]: ...


class LineageOutboxStore(Protocol):
    """What `controller/lineage_outbox.py` needs: the events still to deliver, and their outcome."""

    def unsent_lineage_events(self, limit: int = ...) -> list[LineageEventRecord]: ...
    def mark_lineage_sent(self, event_id: int) -> None: ...
    def mark_lineage_failed(self, event_id: int, error: str, next_try_at: datetime) -> None: ...


class LineageStore(LineageRecorderStore, LineageOutboxStore, Protocol):
    """The lineage recorder's loop: recording, then delivering."""
