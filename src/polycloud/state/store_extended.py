"""Store methods of what runs beside the declared fleet: canary rollouts, secrets, inference keys, training
jobs, the audit trail, the cost ledger and observability. Each is one short transaction, as in `Store`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from polycloud.exchange import KeyGrant, KeyLoad, RevisionCounts
from polycloud.state import audit as audit_chain
from polycloud.state import desired, key_loads, ledger, loads, rollouts
from polycloud.state import jobs as job_runs
from polycloud.state import keys as inference_keys
from polycloud.state import observability as obs_state
from polycloud.state import secrets as sealed
from polycloud.state.job_records import AttemptInput, AttemptState, JobRunRecord, JobRunState
from polycloud.state.obs_records import AnomalyInput, AnomalyRecord, IncidentRecord, SliMinute
from polycloud.state.records import (
    AuditInput,
    AuditRecord,
    AuditVerdict,
    EventRecord,
    InferenceKeyRecord,
    SealedSecret,
    SecretRecord,
)
from polycloud.state.rollout_records import RolloutRecord, RolloutState
from polycloud.state.store_core import StoreCore


class ExtendedStore(StoreCore):
    """Rollouts, secrets, keys, jobs, audit, ledger and observability (see each section)."""

    # canary rollouts

    def start_rollout(self, service: str, *, baseline: int, canary: int, steps: list[int]) -> RolloutRecord:
        """Begin a canary rollout of revision `canary` from `baseline`, superseding an active one."""
        with self._session(write=True, lock_name="desired") as session:
            return rollouts.start(session, service, baseline, canary, steps, self._clock())

    def rollouts(self, service: str | None = None, *, limit: int = 50) -> list[RolloutRecord]:
        """Rollouts newest first, optionally of one service."""
        with self._session(write=False) as session:
            return rollouts.listing(session, service, limit)

    def active_rollouts(self) -> list[RolloutRecord]:
        """Every progressing or paused rollout."""
        with self._session(write=False) as session:
            return rollouts.active(session)

    def progress_rollout(self, rollout_id: int, **changes: Any) -> RolloutRecord | None:
        """Record the controller's progress on an active rollout; None when it is no longer active."""
        now = self._clock()
        with self._session(write=True, lock_name="desired") as session:
            return rollouts.progress(session, rollout_id, changes, now)

    def control_rollout(self, service: str, *, to: RolloutState, message: str) -> RolloutRecord:
        """Pause (`to="paused"`) or resume (`to="progressing"`) the active rollout of `service`."""
        with self._session(write=True, lock_name="desired") as session:
            return rollouts.control(session, service, to, message, self._clock())

    def end_rollout(
        self,
        service: str,
        *,
        state: RolloutState,
        message: str,
        author: str,
        rollout_id: int | None = None,
    ) -> RolloutRecord:
        """End the active rollout; "rolled-back" and "aborted" also restore the baseline revision."""
        authorship = desired.Authorship(author, message, self._clock())
        with self._session(write=True, lock_name="desired") as session:
            return rollouts.end(session, service, rollout_id, state, message, authorship)

    def report_revision_counts(self, gateway_id: str, rows: list[RevisionCounts]) -> None:
        """Make `rows` gateway `gateway_id`'s whole current per-revision counts."""
        now = self._clock()
        with self._session(write=True, lock_name="load") as session:
            rollouts.replace_counts(session, gateway_id, rows, now)

    def revision_counts(self, service: str, max_age_s: float) -> list[RevisionCounts]:
        """Per-revision counts of `service` from gateways that reported in the last `max_age_s` s."""
        since = self._clock() - timedelta(seconds=max_age_s)
        with self._session(write=False) as session:
            return rollouts.counts(session, service, since)

    # secrets (ciphertext only: `polycloud.secrets` encrypts and decrypts)

    def put_secret(self, secret: SealedSecret) -> SecretRecord:
        """Store a sealed secret, replacing the value of one with the same (project, name)."""
        now = self._clock()
        with self._session(write=True, lock_name="secrets") as session:
            return sealed.put_secret(session, secret, now)

    def secrets(self) -> list[SecretRecord]:
        """Every secret's name, scope and version (never a value), by (project, name)."""
        with self._session(write=False) as session:
            return sealed.list_secrets(session)

    def sealed_secrets(self) -> list[SealedSecret]:
        """Every secret's ciphertext, for the process that holds the master key."""
        with self._session(write=False) as session:
            return sealed.sealed_secrets(session)

    def delete_secret(self, name: str, project: str | None) -> None:
        """Delete a secret. Raises NotFoundError when there is none."""
        with self._session(write=True, lock_name="secrets") as session:
            sealed.delete_secret(session, name, project)

    def rewrap_secrets(self, rewrap: sealed.Rewrap) -> int:
        """Re-wrap every data key in one transaction (all or none); returns how many."""
        now = self._clock()
        with self._session(write=True, lock_name="secrets") as session:
            return sealed.rewrap_all(session, rewrap, now)

    # gateway inference keys

    def create_inference_key(
        self,
        *,
        service: str,
        name: str,
        rps: float,
        burst: int,
        monthly_quota: int | None,
        tokens_per_minute: int | None = None,
        monthly_tokens: int | None = None,
    ) -> tuple[str, InferenceKeyRecord]:
        """Create a key of `service`; it is returned here once and only its sha256 is kept."""
        now = self._clock()
        with self._session(write=True) as session:
            return inference_keys.create_key(
                session,
                service=service,
                name=name,
                rps=rps,
                burst=burst,
                monthly_quota=monthly_quota,
                now=now,
                tokens_per_minute=tokens_per_minute,
                monthly_tokens=monthly_tokens,
            )

    def inference_keys(self, service: str | None = None) -> list[InferenceKeyRecord]:
        """Keys (revoked ones too) with this month's usage, oldest first."""
        now = self._clock()
        with self._session(write=False) as session:
            return inference_keys.list_keys(session, service, now)

    def revoke_inference_key(self, key_id: int) -> InferenceKeyRecord:
        """Revoke a key for good. Raises NotFoundError when there is none."""
        with self._session(write=True) as session:
            return inference_keys.revoke_key(session, key_id)

    def key_grants(self) -> list[KeyGrant]:
        """Every key (revoked ones marked) with its limits and this month's usage, for the gateways."""
        now = self._clock()
        with self._session(write=False) as session:
            return inference_keys.grants(session, now)

    def add_key_usage(self, month: str, counts: dict[int, int], tokens: dict[int, int] | None = None) -> None:
        """Add a gateway's request counts and LLM token counts per key id to `month` ("YYYY-MM")."""
        now = self._clock()
        with self._session(write=True, lock_name="key_usage") as session:
            inference_keys.add_usage(session, month, counts, now, tokens)

    # training jobs

    def job_run(self, job: str, revision: int, cluster: str) -> JobRunRecord:
        """The run of (`job`, `revision`), created `pending` on `cluster` if there is none yet."""
        now = self._clock()
        with self._session(write=True, lock_name="jobs") as session:
            return job_runs.create_run(session, job, revision, cluster, now)

    def job_runs(self, job: str | None = None) -> list[JobRunRecord]:
        """Every job run (of `job`, when given) with its attempts, sorted by (job, revision)."""
        with self._session(write=False) as session:
            return job_runs.list_runs(session, job)

    def add_job_attempt(self, run_id: int, attempt: AttemptInput) -> None:
        """Record a started attempt; the run becomes `running` there and its egress grows, atomically.

        Raises:
            NotFoundError: No such run.
            ConflictError: The run is final already, or the attempt number is taken.
        """
        now = self._clock()
        with self._session(write=True, lock_name="jobs") as session:
            job_runs.add_attempt(session, run_id, attempt, now)

    def end_job_attempt(
        self,
        run_id: int,
        number: int,
        *,
        state: AttemptState,
        run_state: JobRunState,
        exit_code: int | None = None,
        message: str = "",
    ) -> None:
        """End attempt `number` as `state` and move its run to `run_state` (unless final), atomically."""
        now = self._clock()
        with self._session(write=True, lock_name="jobs") as session:
            job_runs.end_attempt(
                session,
                run_id,
                number,
                state=state,
                exit_code=exit_code,
                message=message,
                run=run_state,
                now=now,
            )

    def set_job_state(self, run_id: int, state: JobRunState, message: str = "") -> bool:
        """Move a run that is not final to `state`; False when it was final already."""
        now = self._clock()
        with self._session(write=True, lock_name="jobs") as session:
            return job_runs.set_state(session, run_id, state, message, now)

    # audit trail

    def audit(self, entry: AuditInput) -> AuditRecord:
        """Append `entry` to the audit hash chain, stamped with now; safe from several processes at once."""
        now = self._clock()
        with self._session(write=True, lock_name="audit") as session:
            return audit_chain.append(session, entry, now)

    def audit_log(self, *, limit: int = 100, before: int | None = None) -> list[AuditRecord]:
        """The newest `limit` audit entries (those below sequence number `before`), newest first.

        Raises:
            UserError: `limit` is outside 1..10000.
        """
        with self._session(write=False) as session:
            return audit_chain.entries(session, limit, before)

    def verify_audit(self) -> AuditVerdict:
        """Walk the whole audit chain; the verdict names the first tampered entry and how."""
        with self._session(write=False) as session:
            return audit_chain.verify(session)

    # cost ledger (the accountant writes; reports read; see `polycloud.state.ledger`)

    def accrue_cost(
        self, rates: list[ledger.RateAccrual], totals: list[ledger.TotalAccrual], *, max_gap_s: float
    ) -> float:
        """Accrue `rates` since the shared cursor (at most `max_gap_s` s) and the growth of `totals`."""
        now = self._clock()
        with self._session(write=True, lock_name="ledger") as session:
            return ledger.accrue(session, rates, totals, now, max_gap_s)

    def cost_lines(self, since: datetime | None = None) -> list[ledger.LedgerLine]:
        """Accrued cost per (workload, revision, cluster, category, source) from `since`'s hour on."""
        with self._session(write=False) as session:
            return ledger.lines(session, since)

    def tokens_served(self, since: datetime | None = None) -> list[loads.TokensServed]:
        """LLM tokens per (service, cluster) from `since`'s hour on, as the gateways reported them."""
        with self._session(write=False) as session:
            return loads.tokens_served(session, since)

    def cost_hours(self, since: datetime | None = None) -> list[ledger.LedgerLine]:
        """Accrued cost per ledger key and hour from `since`'s hour on, ordered by hour."""
        with self._session(write=False) as session:
            return ledger.hourly_lines(session, since)

    def record_budget_alerts(self, alerts: list[ledger.BudgetAlertInput]) -> list[ledger.BudgetAlertInput]:
        """Record alerts not recorded before, each with its event, atomically; returns the new ones."""
        now = self._clock()
        with self._session(write=True, lock_name="ledger") as session:
            return ledger.record_alerts(session, alerts, now)

    # observability (the observer writes; /slo, /incidents and /status read; `polycloud.state.observability`)

    def put_sli_minutes(self, rows: list[SliMinute]) -> None:
        """Insert or replace per-minute SLI rows.

        Raises:
            UserError: A row off a whole minute, of an unknown source, or with errors above requests.
        """
        with self._session(write=True, lock_name="sli") as session:
            obs_state.put_sli_minutes(session, rows)

    def sli_minutes(self, since: datetime) -> list[SliMinute]:
        """SLI rows of minutes at or after `since`, sorted by (service, cluster, source, minute)."""
        with self._session(write=False) as session:
            return obs_state.sli_minutes(session, since)

    def forget_observations(self, older_than_s: float) -> None:
        """Delete SLI minutes and anomalies older than `older_than_s` seconds."""
        before = self._clock() - timedelta(seconds=older_than_s)
        with self._session(write=True, lock_name="sli") as session:
            obs_state.forget_before(session, before)

    def events_after(self, after_id: int, *, limit: int = 500) -> list[EventRecord]:
        """Events with an id above `after_id`, oldest first (the observer's cursor)."""
        with self._session(write=False) as session:
            return obs_state.events_after(session, after_id, limit)

    def last_event_id(self) -> int:
        """The highest event id, 0 without events."""
        with self._session(write=False) as session:
            return obs_state.last_event_id(session)

    def open_incident(
        self, kind: str, title: str, event_ids: list[int], *, service: str | None, cluster: str | None
    ) -> int:
        """Open an incident with `event_ids` on its timeline; returns its id."""
        now = self._clock()
        with self._session(write=True) as session:
            incident_id = obs_state.open_incident(session, kind, service, cluster, title, now)
            obs_state.attach_events(session, incident_id, event_ids, now)
            return incident_id

    def attach_incident_events(
        self, incident_id: int, event_ids: list[int], *, resolve: bool = False
    ) -> None:
        """Add events to an incident's timeline, and resolve it with `resolve`.

        Raises:
            NotFoundError: No such incident.
        """
        now = self._clock()
        with self._session(write=True) as session:
            obs_state.attach_events(session, incident_id, event_ids, now)
            if resolve:
                obs_state.resolve_incident(session, incident_id, now)

    def incidents(self, *, state: str | None = None, limit: int = 50) -> list[IncidentRecord]:
        """The newest incidents with their timelines, newest first.

        Raises:
            UserError: `limit` below 1.
        """
        with self._session(write=False) as session:
            return obs_state.incidents(session, state=state, limit=limit)

    def add_anomalies(self, anomalies: list[AnomalyInput]) -> None:
        """Append anomalies (stamped with now when they carry no time)."""
        now = self._clock()
        with self._session(write=True) as session:
            obs_state.add_anomalies(session, anomalies, now)

    def report_key_loads(self, gateway_id: str, rows: list[KeyLoad]) -> None:
        """Make `rows` gateway `gateway_id`'s whole current per-inference-key report, stamped with now.

        Raises:
            UserError: Empty `gateway_id`, or two rows for one key.
        """
        now = self._clock()
        with self._session(write=True, lock_name="load") as session:
            key_loads.replace_key_loads(session, gateway_id, rows, now)

    def key_loads(self, max_age_s: float) -> list[KeyLoad]:
        """Every gateway's per-key rows reported within the last `max_age_s` seconds."""
        since = self._clock() - timedelta(seconds=max_age_s)
        with self._session(write=False) as session:
            return key_loads.fresh_key_loads(session, since)

    def anomalies(self, since_s: float, *, limit: int = 50) -> list[AnomalyRecord]:
        """Anomalies of the last `since_s` seconds, newest first."""
        since = self._clock() - timedelta(seconds=since_s)
        with self._session(write=False) as session:
            return obs_state.anomalies(session, since, limit)

    def sli_totals(
        self, since_s: float, objectives: dict[str, float]
    ) -> list[tuple[str, str, str, float, float, float]]:
        """Per (service, cluster, source) over the last `since_s` seconds: requests, errors, and requests
        in minutes whose p99 met the service's objective (`objectives`: service → milliseconds)."""
        since = self._clock() - timedelta(seconds=since_s)
        with self._session(write=False) as session:
            return obs_state.sli_totals(session, since, objectives)
