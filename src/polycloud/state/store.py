"""`Store`: the durable state of a polycloud control plane, behind one synchronous, thread-safe facade.

Every method is one short transaction on its own session, so the API process, the reconciler thread and
CLI processes can share one database. Database failures surface as polycloud errors: an unreachable or
busy database as `TransientError`, a violated constraint as `ConflictError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from polycloud.errors import ConflictError, TransientError, UserError
from polycloud.state import audit as audit_chain
from polycloud.state import desired, ledger, loads, observed, rollouts, tokens
from polycloud.state import jobs as job_runs
from polycloud.state import keys as inference_keys
from polycloud.state import observability as obs_state
from polycloud.state import secrets as sealed
from polycloud.state.connecting import lock, make_engine, mask_url, writer
from polycloud.state.job_records import AttemptInput, AttemptState, JobRunRecord, JobRunState
from polycloud.state.migrating import upgrade
from polycloud.state.obs_records import AnomalyInput, AnomalyRecord, IncidentRecord, SliMinute
from polycloud.state.records import (
    ApplyResult,
    AuditInput,
    AuditRecord,
    AuditVerdict,
    DocumentInput,
    DocumentState,
    EventInput,
    EventRecord,
    InferenceKeyRecord,
    KeyGrant,
    LoadReport,
    ReplicaRecord,
    RevisionRecord,
    SealedSecret,
    SecretRecord,
    TokenRecord,
    WorkloadInput,
    WorkloadState,
)
from polycloud.state.rollout_records import RevisionCounts, RolloutRecord, RolloutState
from polycloud.state.tables import DocumentRow

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _first_line(error: DBAPIError) -> str:
    lines = str(error.orig).strip().splitlines()
    return lines[0].strip() if lines else type(error.orig).__name__


class Store:
    """The state store. Create with `Store.open(url)`; close with `close()` or a `with` block."""

    def __init__(self, engine: Engine, *, clock: Clock = _utcnow) -> None:
        """Wrap an engine whose database is already migrated; prefer `Store.open`."""
        self._engine = engine
        self._clock = clock
        self._label = engine.url.render_as_string(hide_password=True)
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = sessionmaker(bind=writer(engine), expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, clock: Clock | None = None) -> Store:
        """Connect to the database at `url`, migrate it to the current schema and return a store.

        Safe to call from several processes at once on the same database.

        Args:
            url: `sqlite:////abs/path/state.db` (the folder is created) or
                `postgresql+psycopg://user@host:port/db` (a `?options=-csearch_path%3DSCHEMA` query selects
                a schema).
            clock: Source of "now" for timestamps and token expiry; the system UTC clock by default.

        Raises:
            UserError: The URL is invalid, the database unreachable, or its schema newer than this
                polycloud. The one-line message names the URL with any password masked.
        """
        engine = make_engine(url)
        label = mask_url(url)
        try:
            upgrade(engine)
        except DBAPIError as e:
            engine.dispose()
            raise UserError(f"cannot open the state database {label}: {_first_line(e)}") from e
        return cls(engine, clock=clock or _utcnow)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and diagnostics; use the methods for state)."""
        return self._engine

    def close(self) -> None:
        """Release every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _session(self, *, write: bool, lock_name: str | None = None) -> Iterator[Session]:
        try:
            with (self._writer if write else self._reader).begin() as session:
                if lock_name is not None:
                    lock(session.connection(), lock_name)
                yield session
        except IntegrityError as e:
            raise ConflictError(f"the state database refused the change: {_first_line(e)}") from e
        except OperationalError as e:
            raise TransientError(f"state database {self._label} unavailable: {_first_line(e)}") from e

    # desired state

    def apply(
        self,
        *,
        workloads: list[WorkloadInput],
        documents: list[DocumentInput],
        author: str,
        message: str,
        prune: bool = True,
    ) -> ApplyResult:
        """Record the declared fleet as the desired state, in one transaction (all of it or nothing).

        A workload gets a new revision (number = previous + 1) when it is new, was deleted, or its
        content_hash differs from its current revision; otherwise it is left untouched. Documents are
        overwritten when their hash differs. With `prune`, workloads and documents missing from the
        input are marked deleted (their history stays).

        Args:
            workloads: Every Service and Job declared; names must be unique.
            documents: Every other declared object; (kind, name) pairs must be unique.
            author: Who applies, recorded on each new revision.
            message: Why, recorded on each new revision.
            prune: Mark what is not declared as deleted.

        Returns:
            What happened to each workload and document.

        Raises:
            UserError: A name is declared twice.
        """
        authorship = desired.Authorship(author, message, self._clock())
        with self._session(write=True, lock_name="desired") as session:
            return desired.apply_changes(session, workloads, documents, authorship, prune=prune)

    def current(self) -> list[WorkloadState]:
        """Every workload that is not deleted, with the content of its current revision, sorted by name."""
        with self._session(write=False) as session:
            return desired.current_workloads(session)

    def documents(self, kind: str | None = None) -> list[DocumentState]:
        """Declared non-workload objects that are not deleted, optionally of one kind, by (kind, name)."""
        query = select(DocumentRow).where(DocumentRow.deleted.is_(False))
        if kind is not None:
            query = query.where(DocumentRow.kind == kind)
        query = query.order_by(DocumentRow.kind, DocumentRow.name)
        with self._session(write=False) as session:
            return [row.to_state() for row in session.scalars(query)]

    def history(self, workload: str) -> list[RevisionRecord]:
        """Every revision of `workload`, oldest first, including a deleted workload's.

        Raises:
            NotFoundError: No such workload; the message suggests close names.
        """
        with self._session(write=False) as session:
            return [row.to_record() for row in desired.revisions_of(session, workload)]

    def revision(self, workload: str, number: int) -> RevisionRecord:
        """Revision `number` of `workload`.

        Raises:
            NotFoundError: No such workload, or no such revision of it.
        """
        with self._session(write=False) as session:
            return desired.get_revision(session, workload, number).to_record()

    def rollback(self, workload: str, *, to: int | None, author: str, message: str = "") -> RevisionRecord:
        """Append a new revision to `workload` that copies the spec and placement of revision `to`.

        Args:
            workload: The workload's name.
            to: The revision to restore; by default the latest revision before the current one whose
                content differs from it. A deleted workload needs an explicit `to` and comes back.
            author: Recorded on the new revision.
            message: Recorded on the new revision; "rollback to rN" by default.

        Returns:
            The new revision.

        Raises:
            NotFoundError: No such workload or revision.
            ConflictError: Nothing to roll back to, or `to` has the current content already.
        """
        authorship = desired.Authorship(author, message, self._clock())
        with self._session(write=True, lock_name="desired") as session:
            return desired.rollback(session, workload, to, authorship)

    # observed state

    def replace_replicas(self, replicas: list[ReplicaRecord]) -> None:
        """Make `replicas` the whole observed snapshot, atomically (readers see the old or the new one).

        Raises:
            UserError: Two replicas share an id.
        """
        with self._session(write=True, lock_name="observed") as session:
            observed.replace_replicas(session, replicas)

    def replicas(self) -> list[ReplicaRecord]:
        """The observed snapshot, sorted by (workload, cluster, id)."""
        with self._session(write=False) as session:
            return observed.list_replicas(session)

    def add_events(self, events: list[EventInput]) -> None:
        """Append events; one without a time gets the store clock's now."""
        now = self._clock()
        with self._session(write=True) as session:
            observed.add_events(session, events, now)

    def events(
        self, *, workload: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest `limit` events, newest first, optionally only those of one workload or cluster.

        Raises:
            UserError: `limit` is below 1.
        """
        with self._session(write=False) as session:
            return observed.list_events(session, workload=workload, cluster=cluster, limit=limit)

    # load reports

    def report_load(self, gateway_id: str, rows: list[LoadReport]) -> None:
        """Make `rows` the whole current report of gateway `gateway_id`, atomically, stamped with now.

        Rows the gateway reported before and not now are gone afterwards; other gateways' rows stay.

        Raises:
            UserError: Empty `gateway_id`, a row naming another gateway, or two rows for one
                (service, cluster).
        """
        now = self._clock()
        with self._session(write=True, lock_name="load") as session:
            loads.replace_reports(session, gateway_id, rows, now)

    def load(self, max_age_s: float) -> list[LoadReport]:
        """Every gateway's rows reported within the last `max_age_s` seconds.

        Sorted by (service, cluster, gateway_id); rows of a gateway that stopped reporting age out.
        """
        since = self._clock() - timedelta(seconds=max_age_s)
        with self._session(write=False) as session:
            return loads.fresh_reports(session, since)

    # tokens

    def create_token(
        self, *, name: str, role: str, project: str | None, expires_at: datetime | None
    ) -> tuple[str, TokenRecord]:
        """Create an API token. Its plaintext is returned here once and never stored.

        Args:
            name: A label for humans ("ci", "alice").
            role: "viewer", "deployer" or "admin".
            project: Limit the token to one project; None for all.
            expires_at: Timezone-aware expiry; None for never.

        Returns:
            The token to hand to the user (it starts with "pc_"), and its record.

        Raises:
            UserError: Empty name, unknown role, or a naive `expires_at`.
        """
        now = self._clock()
        with self._session(write=True) as session:
            return tokens.create_token(
                session, name=name, role=role, project=project, expires_at=expires_at, now=now
            )

    def tokens(self) -> list[TokenRecord]:
        """Every token ever created (revoked and expired included), oldest first."""
        with self._session(write=False) as session:
            return tokens.list_tokens(session)

    def revoke_token(self, token_id: int) -> None:
        """Revoke a token for good; revoking it again changes nothing.

        Raises:
            NotFoundError: No token has that id.
        """
        with self._session(write=True) as session:
            tokens.revoke_token(session, token_id)

    def authenticate(self, token: str) -> TokenRecord | None:
        """The record of a valid token; None when it is unknown, revoked or expired."""
        now = self._clock()
        with self._session(write=False) as session:
            return tokens.authenticate(session, token, now)

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
        self, *, service: str, name: str, rps: float, burst: int, monthly_quota: int | None
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

    def add_key_usage(self, month: str, counts: dict[int, int]) -> None:
        """Add a gateway's request counts per key id to `month` ("YYYY-MM")."""
        now = self._clock()
        with self._session(write=True, lock_name="key_usage") as session:
            inference_keys.add_usage(session, month, counts, now)

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
