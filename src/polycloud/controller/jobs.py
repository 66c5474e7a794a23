"""The job controller: runs declared training jobs to completion through preemptions and failures.

Level-triggered like the reconciler, in a thread of its own: each pass loads the declared jobs and
their recorded runs, asks the drivers what their job processes are doing, and moves each run on —
start its first attempt, record how an attempt ended, restart it (on the same cluster or, with
`next-cheapest`, on the next-cheapest feasible one, carrying the latest verified checkpoint there and
accounting the bytes as egress), or stop what should no longer run. Driver calls never happen inside
a database transaction; every store write is one transaction that leaves a run whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polycloud.catalog import Catalog
from polycloud.controller import checkpoints
from polycloud.controller.desired import SecretLookup
from polycloud.controller.jobdecisions import next_cluster, outcome, ranked_choices
from polycloud.controller.jobreport import jobs_document
from polycloud.drivers.base import ClusterDriver
from polycloud.drivers.jobs import JobLaunch, JobStatus, SupportsJobs
from polycloud.errors import ConflictError, NotFoundError, PermanentError, PolycloudError, TransientError
from polycloud.loops import Gate, Loop, always
from polycloud.placement.sites import build_site, transfer_usd_per_gb
from polycloud.spec.models import Cluster, Dataset, Job, Policy
from polycloud.state import EventInput, WorkloadState
from polycloud.state.job_records import AttemptInput, AttemptRecord, AttemptState, JobRunRecord
from polycloud.state.records import EventLevel
from polycloud.state.repositories_runtime import JobStore

DriverMaker = Callable[[str, str, Path], ClusterDriver]
Observed = dict[tuple[str, str], JobStatus]
"""(job, cluster) → the latest attempt the cluster's driver knows of."""


def no_secrets(name: str, project: str | None) -> str | None:
    return None


@dataclass(frozen=True)
class Fleetview:
    """What one pass knows of the declared fleet."""

    jobs: dict[str, tuple[WorkloadState, Job]]
    clusters: dict[str, Cluster]
    datasets: dict[str, Dataset]
    policies: dict[str, Policy]


@dataclass
class JobController:
    """One per control plane; `start()` runs its loop, the other methods serve API threads."""

    store: JobStore
    catalog: Catalog
    home: Path
    make_driver: DriverMaker
    secrets: SecretLookup = no_secrets
    interval_s: float = 0.2
    stop_grace_s: float = 10.0
    """Grace a cancelled or superseded job gets to exit after SIGTERM."""
    lost_after_s: float = 30.0
    """An attempt recorded as running that no driver reports, this long after its start, has failed."""
    gate: Gate = always
    """Passes run only while this is open (only the holder of the leader lease runs jobs)."""

    def __post_init__(self) -> None:
        self._drivers: dict[str, ClusterDriver] = {}
        self._lock = threading.RLock()
        self.loop = Loop("jobs", self.step, interval_s=self.interval_s, gate=self.gate, on_error=self._failed)
        self._said = ""

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Advance jobs in a thread of its own until `stop()`; a failed pass becomes an event."""
        self.loop.start()

    def _failed(self, error: PolycloudError) -> None:
        if str(error) != self._said:
            self._said = str(error)
            self._event("error", "JobControllerFailed", str(error))

    def wake(self) -> None:
        """Advance now rather than at the end of the interval."""
        self.loop.wake()

    def stop(self) -> None:
        """Stop after the current pass (waits for it); a pass still running starts nothing new."""
        self.loop.stop()

    def close(self) -> None:
        with self._lock:
            for driver in self._drivers.values():
                driver.close()
            self._drivers.clear()

    # -- one pass ------------------------------------------------------------------------------
    def step(self) -> None:
        """One load → observe → advance pass."""
        with self._lock:
            view = self._load()
            observed = self._observe(view.clusters)
            runs = {(r.job, r.revision): r for r in self.store.job_runs()}
            self._stop_stale(runs, view, observed)  # first: what ended is recorded before any restart
            for name, (workload, job) in view.jobs.items():
                run = runs.get((name, workload.number))
                if run is None:
                    run = self.store.job_run(name, workload.number, _planned(workload))
                self._advance(run, workload, job, view, observed)

    def _load(self) -> Fleetview:
        jobs: dict[str, tuple[WorkloadState, Job]] = {}
        for w in self.store.current():
            if w.kind == "Job":
                job = Job.model_validate(w.spec)
                if job.spec.command:
                    jobs[w.name] = (w, job)
        docs = self.store.documents()
        return Fleetview(
            jobs=jobs,
            clusters={d.name: Cluster.model_validate(d.spec) for d in docs if d.kind == "Cluster"},
            datasets={d.name: Dataset.model_validate(d.spec) for d in docs if d.kind == "Dataset"},
            policies={d.name: Policy.model_validate(d.spec) for d in docs if d.kind == "Policy"},
        )

    def _observe(self, clusters: dict[str, Cluster]) -> Observed:
        observed: Observed = {}
        for name, cluster in clusters.items():
            driver = self._driver(name, cluster)
            if isinstance(driver, SupportsJobs):
                observed.update({(s.job, name): s for s in driver.list_jobs()})
        return observed

    def _driver(self, name: str, cluster: Cluster | None = None) -> ClusterDriver | None:
        """The driver of cluster `name`, made on first use (from `cluster`, else its stored document:
        a server that never led has run no pass, yet takes cancels, preemptions and log reads)."""
        if name not in self._drivers:
            cluster = cluster or self._declared_cluster(name)
            if cluster is not None:
                self._drivers[name] = self.make_driver(cluster.spec.driver.type, name, self.home)
        return self._drivers.get(name)

    def _declared_cluster(self, name: str) -> Cluster | None:
        found = next((d for d in self.store.documents("Cluster") if d.name == name), None)
        return None if found is None else Cluster.model_validate(found.spec)

    def _jobs_driver(self, name: str) -> SupportsJobs:
        driver = self._driver(name)
        if not isinstance(driver, SupportsJobs):
            raise PermanentError(f"cluster {name} cannot run jobs (its driver does not support them)")
        return driver

    # -- advancing one run ---------------------------------------------------------------------
    def _advance(self, run: JobRunRecord, w: WorkloadState, job: Job, view: Fleetview, obs: Observed) -> None:
        if run.final:
            self._settle(run, obs)
            return
        attempt = run.latest
        if attempt is None or attempt.state != "running":
            if not self.loop.stopping:  # shutting down: record endings, start nothing
                self._start_next(run, w, job, view, obs)
            return
        status = obs.get((run.job, attempt.cluster))
        if status is None or status.attempt != attempt.number:
            self._lost(run, attempt, job.spec.recovery.maxRestarts)
            return
        if status.ended:
            result = outcome(run, status, job.spec.recovery.maxRestarts)
            self.store.end_job_attempt(
                run.id,
                attempt.number,
                state=result.attempt,
                run_state=result.run,
                exit_code=status.exit_code,
                message=result.message,
            )
            level: EventLevel = "error" if result.run == "failed" else "info"
            if result.attempt in ("preempted", "failed") and result.run != "failed":
                level = "warning"
            self._event(level, result.reason, result.message, run.job, attempt.cluster)
            self.loop.wake()  # start the next attempt without waiting a pass

    def _settle(self, run: JobRunRecord, obs: Observed) -> None:
        """A final run: stop whatever of it still runs, and close its last attempt once it has ended."""
        for other in _of(run.job, obs):
            if other.revision == run.revision and other.state == "running":  # `stopping`: told already
                self._jobs_driver(other.cluster).stop_job(run.job, self.stop_grace_s, "cancelled")
        attempt = run.latest
        if attempt is None or attempt.ended_at is not None:
            return
        status = obs.get((run.job, attempt.cluster))
        if status is not None and status.attempt == attempt.number:
            if status.ended:
                state: AttemptState = "succeeded" if status.state == "succeeded" else "cancelled"
                self.store.end_job_attempt(
                    run.id, attempt.number, state=state, run_state=run.state, exit_code=status.exit_code
                )
        elif _age_s(attempt) > self.lost_after_s:  # its cluster no longer reports it: stop paying for it
            message = "no longer reported by its driver"
            self.store.end_job_attempt(
                run.id, attempt.number, state="cancelled", run_state=run.state, message=message
            )

    def _lost(self, run: JobRunRecord, attempt: AttemptRecord, max_restarts: int) -> None:
        """An attempt no driver reports any more (cluster gone, process lost): a failure once it is old."""
        if _age_s(attempt) <= self.lost_after_s:
            return
        message = f"attempt {attempt.number} on {attempt.cluster} is no longer reported by its driver"
        status = JobStatus(run.job, attempt.cluster, run.revision, attempt.number, "failed", message=message)
        result = outcome(run, status, max_restarts)
        self.store.end_job_attempt(
            run.id, attempt.number, state=result.attempt, run_state=result.run, message=result.message
        )
        self._event("warning", "JobAttemptLost", result.message, run.job, attempt.cluster)

    def _start_next(
        self, run: JobRunRecord, w: WorkloadState, job: Job, view: Fleetview, obs: Observed
    ) -> None:
        last = run.latest
        number = 1 if last is None else last.number + 1
        if any(not s.ended and (s.revision, s.attempt) != (run.revision, number) for s in _of(run.job, obs)):
            return  # an earlier attempt or revision still exits: never two processes of one job
        cluster, hourly = self._where(run, w, job, view)
        if cluster is None:
            return
        adopted = obs.get((run.job, cluster))
        if adopted is not None and not adopted.ended:  # started before a crash, never recorded
            self._record_start(run, job, number, cluster, adopted.pid, hourly, 0, view)
            return
        env, missing = self._env(job, w.project)
        if missing is not None:
            self.store.set_job_state(run.id, "pending", f"secret {missing!r} does not exist")
            return
        target = self._driver(cluster, view.clusters[cluster])
        if not isinstance(target, SupportsJobs):
            self._fail(run, f"cluster {cluster}'s driver cannot run jobs", cluster)
            return
        moved = self._stage_checkpoint(run, target, last, cluster)
        try:
            status = target.start_job(_launch(run, job, number, cluster, env))
        except TransientError as e:
            self.store.set_job_state(run.id, "pending", str(e))
            return
        except PermanentError as e:
            self._fail(run, str(e), cluster)
            return
        self._record_start(run, job, number, cluster, status.pid, hourly, moved, view, source=last)

    def _where(
        self, run: JobRunRecord, w: WorkloadState, job: Job, view: Fleetview
    ) -> tuple[str | None, float]:
        """The cluster of the next attempt and its hourly price; None (run failed) when it is gone."""
        ranked = ranked_choices(job, view.clusters, view.datasets, view.policies, self.catalog)
        last = run.latest
        if last is None:
            cluster = _planned(w)
        else:
            names = [c.cluster for c in ranked]
            cluster = next_cluster(job.spec.recovery.strategy, last.cluster, last.state, names)
        if cluster not in view.clusters:
            self._fail(run, f"cluster {cluster!r} is no longer declared", cluster)
            return None, 0.0
        prices = {c.cluster: c.hourly_usd for c in ranked}
        return cluster, prices.get(cluster, _planned_hourly(w))

    def _stage_checkpoint(
        self, run: JobRunRecord, target: SupportsJobs, last: AttemptRecord | None, cluster: str
    ) -> int:
        """Put the checkpoint the attempt resumes from in place; the bytes carried between clusters.

        A run's first attempt starts from nothing: a new revision never resumes an older one's state.
        """
        root = target.checkpoint_dir(run.job)
        try:
            if last is None:
                checkpoints.clear(root)
                return 0
            moved = self._carry(run.job, last.cluster, cluster)
            why = checkpoints.prepare(root)
        except OSError as e:  # a full or failing disk: retried next pass, nothing started meanwhile
            raise TransientError(f"job {run.job}: cannot stage its checkpoint on {cluster}: {e}") from e
        if why:
            self._event("warning", "CheckpointDiscarded", why, run.job, cluster)
        return moved

    def _fail(self, run: JobRunRecord, message: str, cluster: str | None) -> None:
        self.store.set_job_state(run.id, "failed", message)
        self._event("error", "JobFailed", message, run.job, cluster)

    def _record_start(
        self,
        run: JobRunRecord,
        job: Job,
        number: int,
        cluster: str,
        pid: int | None,
        hourly: float,
        moved: int,
        view: Fleetview,
        source: AttemptRecord | None = None,
    ) -> None:
        egress = 0.0
        if source is not None and moved:
            src, dst = (build_site(view.clusters[c], self.catalog) for c in (source.cluster, cluster))
            egress = moved / checkpoints.BYTES_PER_GB * transfer_usd_per_gb(src, dst)
        attempt = AttemptInput(number, cluster, pid, hourly, job.spec.nodes, datetime.now(UTC), moved, egress)
        try:
            self.store.add_job_attempt(run.id, attempt)
        except ConflictError:  # cancelled meanwhile: what was just started must not run on
            self._jobs_driver(cluster).stop_job(run.job, self.stop_grace_s, "cancelled")
            return
        verb = "started" if number == 1 else "restarted"
        carried = f", carried {moved:,} checkpoint bytes (${egress:.6f} egress)" if moved else ""
        self._event("info", "JobStarted", f"attempt {number} {verb} on {cluster}{carried}", run.job, cluster)

    def _carry(self, job: str, source: str | None, target: str) -> int:
        """Copy the latest verified checkpoint from `source` to `target`; the bytes moved."""
        if source is None or source == target or source not in self._drivers:
            return 0
        src, dst = self._jobs_driver(source), self._jobs_driver(target)
        carried = checkpoints.carry(src.checkpoint_dir(job), dst.checkpoint_dir(job))
        return carried.bytes

    def _env(self, job: Job, project: str | None) -> tuple[dict[str, str], str | None]:
        env: dict[str, str] = {}
        for var in job.spec.env:
            value = var.value if var.secret is None else self.secrets(var.secret, project)
            if value is None:
                return {}, var.secret
            env[var.name] = value
        return env, None

    def _stop_stale(self, runs: dict[tuple[str, int], JobRunRecord], view: Fleetview, obs: Observed) -> None:
        """Cancel runs of jobs no longer declared (or of older revisions) and stop their processes."""
        for (name, revision), run in runs.items():
            declared = view.jobs.get(name)
            if declared is not None and declared[0].number == revision:
                continue
            if not run.final:
                self.store.set_job_state(run.id, "cancelled", "no longer declared (or superseded)")
                self._event("info", "JobCancelled", f"r{revision} is no longer declared", name, run.cluster)
                run = next(r for r in self.store.job_runs(name) if r.revision == revision)
            self._settle(run, obs)

    # -- operations from the API -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The `polycloud jobs status --json` document."""
        declared = [
            w for w in self.store.current() if w.kind == "Job" and w.spec.get("spec", {}).get("command")
        ]
        return jobs_document(self.store.job_runs(), declared, datetime.now(UTC))

    def cancel(self, name: str) -> None:
        """Cancel a job's current run: recorded first, then its process is stopped.

        Raises:
            NotFoundError: The job never ran.
            ConflictError: Its run has ended already.
        """
        run = self._latest_run(name)
        if not self.store.set_job_state(run.id, "cancelled", "cancelled by the user"):
            raise ConflictError(f"job {name} has {run.state} already")
        self._event("info", "JobCancelled", "cancelled by the user", name, run.cluster)
        with self._lock:
            if run.cluster is not None and self._driver(run.cluster) is not None:
                self._jobs_driver(run.cluster).stop_job(name, self.stop_grace_s, "cancelled")
        self.wake()

    def preempt(self, name: str, grace_s: float) -> str:
        """Preempt a running job like a spot reclaim; returns its cluster.

        Raises:
            NotFoundError: The job does not run now.
        """
        run = self._latest_run(name)
        attempt = run.latest
        if run.state != "running" or attempt is None or attempt.state != "running":
            raise NotFoundError(f"job {name} is not running (it is {run.state})")
        with self._lock:
            self._jobs_driver(attempt.cluster).preempt(name, grace_s)
        self._event(
            "warning", "PreemptionDrill", f"SIGTERM now, SIGKILL after {grace_s:g} s", name, attempt.cluster
        )
        self.wake()
        return attempt.cluster

    def log_lines(self, name: str, tail: int) -> list[str]:
        """The last `tail` lines of the job's output (every attempt)."""
        run = self._latest_run(name)
        with self._lock:
            driver = self._driver(run.cluster) if run.cluster else None
            if not isinstance(driver, SupportsJobs):
                return []
            path = driver.job_log(name)
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return lines[-tail:] if tail > 0 else lines

    def stop_jobs(self, timeout_s: float) -> None:
        """Stop every running job (control plane going down); they resume from checkpoints later."""
        with self._lock:
            for driver in self._drivers.values():
                if isinstance(driver, SupportsJobs):
                    for status in driver.list_jobs():
                        if not status.ended:
                            driver.stop_job(status.job, min(timeout_s, self.stop_grace_s), "stopped")
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self._running():
                time.sleep(0.05)
        self.step()  # record the endings, so the runs read `pending`, not `running`

    def _running(self) -> bool:
        return any(
            not s.ended for d in self._drivers.values() if isinstance(d, SupportsJobs) for s in d.list_jobs()
        )

    def _latest_run(self, name: str) -> JobRunRecord:
        runs = self.store.job_runs(name)
        if not runs:
            raise NotFoundError(f"no job {name!r} has run")
        return runs[-1]

    def _event(
        self, level: EventLevel, reason: str, message: str, job: str | None = None, cluster: str | None = None
    ) -> None:
        self.store.add_events([EventInput(level, reason, message, workload=job, cluster=cluster)])


def _age_s(attempt: AttemptRecord) -> float:
    return (datetime.now(UTC) - attempt.started_at).total_seconds()


def _of(job: str, obs: Observed) -> list[JobStatus]:
    return [status for (name, _), status in obs.items() if name == job]


def _launch(run: JobRunRecord, job: Job, number: int, cluster: str, env: dict[str, str]) -> JobLaunch:
    every = job.spec.checkpoint.everySeconds if job.spec.checkpoint else None
    command = tuple(job.spec.command or ())
    return JobLaunch(run.job, cluster, run.revision, number, command, env, checkpoint_every_s=every)


def _planned(w: WorkloadState) -> str:
    return str(w.placement[0]["cluster"])


def _planned_hourly(w: WorkloadState) -> float:
    return float(w.placement[0].get("hourlyUSD", 0.0))
