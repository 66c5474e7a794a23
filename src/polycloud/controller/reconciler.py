"""The reconcile loop: load desired state → observe drivers → plan (pure) → act → record.

Level-triggered and idempotent: every pass starts from what the drivers report running, so a restart
after a crash (even mid-apply) converges to exactly the declared replicas. No driver call happens inside
a database transaction: the store is read, then drivers act, then the snapshot is written. Placement
counts may be overridden each pass: by failover for standbys, by the autoscaler (from the gateways'
load reports) for active and burst clusters.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pydantic import ValidationError

from polycloud.catalog import Catalog
from polycloud.controller.autoscaling import Autoscaler
from polycloud.controller.desired import (
    Canary,
    DesiredState,
    SecretLookup,
    cluster_delays,
    desired_state,
    held_revisions,
    held_state,
)
from polycloud.controller.failover import Failover
from polycloud.controller.faulting import FaultSync
from polycloud.controller.metrics import ControllerMetrics
from polycloud.controller.rollouts import RolloutManager
from polycloud.controller.stepping import Actions, Backoff, plan_step
from polycloud.drivers.base import ClusterDriver, ReplicaStatus
from polycloud.errors import FencedError, NotFoundError, PolycloudError
from polycloud.loops import Gate, Loop, always
from polycloud.placement.sites import Point, build_site
from polycloud.spec.models import Cluster, Service
from polycloud.state import EventInput, ReplicaRecord, WorkloadState
from polycloud.state.records import EventLevel
from polycloud.state.repositories_runtime import ReconcilerStore

DriverMaker = Callable[[str, str, Path], ClusterDriver]


class Fingerprint(NamedTuple):
    """What of a replica's observation is worth a database write when it changes."""

    id: str
    state: str
    endpoint: str | None
    pid: int | None
    revision: int
    role: str


def no_secrets(name: str, project: str | None) -> str | None:
    return None


@dataclass
class Reconciler:
    """Drives every declared cluster to the declared replicas; one instance per control plane."""

    store: ReconcilerStore
    catalog: Catalog
    home: Path
    origin: Point
    make_driver: DriverMaker
    secrets: SecretLookup = no_secrets
    interval_s: float = 0.2
    failover: Failover = field(default_factory=Failover)
    """Active-passive failover: scales a standby to full size while its primary is down."""
    autoscaler: Autoscaler = field(default_factory=Autoscaler)
    """Autoscaling and burst: active and burst clusters sized from the gateways' load reports."""
    env_key: bytes = b""
    """Keys the digests of replica environments (see `desired.fingerprint_key`)."""
    load_max_age_s: float = 5.0
    """Load reports older than this are ignored (their gateway stopped reporting)."""
    metrics: ControllerMetrics = field(default_factory=ControllerMetrics)
    """Replicas desired and ready, failovers, rollouts, pass durations (Prometheus)."""
    gate: Gate = always
    """Passes run only while this is open (a server reconciles only while it holds the leader lease)."""

    def __post_init__(self) -> None:
        self._drivers: dict[str, ClusterDriver] = {}
        self._driver_types: dict[str, str] = {}
        self._backoff = Backoff()
        self.loop = Loop(
            "reconciler", self._timed_step, interval_s=self.interval_s, gate=self.gate, on_error=self._failed
        )
        self._said: dict[str, str] = {}
        self._snapshot: list[Fingerprint] = []
        self._ready = _ready(self.store.replicas())  # what served before a restart, until observed
        self._revisions: dict[tuple[str, int], WorkloadState | None] = {}
        """Older revisions a flag routes to, as read from the store (revisions never change)."""
        self.rollouts = RolloutManager(self.store)
        self.faults = FaultSync(self.store)
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Reconcile in a thread of its own until `stop()`; a failed pass becomes an event."""
        self.loop.start()

    def wake(self) -> None:
        """Reconcile now (after a change) rather than at the end of the interval."""
        self.loop.wake()

    def stop(self) -> None:
        """Stop after the current pass (waits for it)."""
        self.loop.stop()

    def _timed_step(self) -> None:
        started = time.perf_counter()
        try:
            self.step()
        finally:
            self.metrics.duration.observe(time.perf_counter() - started)

    def _failed(self, error: PolycloudError) -> None:
        self.metrics.errors.inc()
        self._say("loop", "error", "ReconcileFailed", str(error))

    def driver(self, cluster: str) -> ClusterDriver | None:
        with self._lock:
            return self._drivers.get(cluster)

    def drivers(self) -> list[ClusterDriver]:
        with self._lock:
            return list(self._drivers.values())

    # -- one pass ----------------------------------------------------------------------------
    def step(self) -> Actions:
        """One load → observe → plan → act → record pass."""
        with self._lock:
            workloads = self.store.current()
            clusters = {d.name: Cluster.model_validate(d.spec) for d in self.store.documents("Cluster")}
            self._refresh_drivers(clusters)
            self.faults.sync(self._drivers)  # before observing: a frozen or downed cluster shows as such
            sites = {name: build_site(c, self.catalog) for name, c in clusters.items()}
            overrides = {name: c.spec.driver.delayMs for name, c in clusters.items()}
            delays = cluster_delays(sites, overrides, self.catalog, self.origin)
            observed = self._observe()
            now = time.monotonic()
            load = self.store.load(max_age_s=self.load_max_age_s)
            held = self._held(workloads)
            serving = _serving(self._ready, {name: {r.number for r in rs} for name, rs in held.items()})
            canaries = self.rollouts.canaries(workloads, serving, delays, self.secrets, self.env_key)
            own = self._without_held(observed, workloads, delays, canaries, held) if held else observed
            autoscale, autoscale_events = self.autoscaler.decide(workloads, own, load, now)
            failover, failover_events = self.failover.decide(workloads, own, now)
            scale = {**autoscale, **failover}  # failover sizes standbys, the autoscaler active and burst
            desired = desired_state(
                workloads,
                delays,
                secrets=self.secrets,
                scale=scale,
                canaries=canaries,
                held=held,
                env_key=self.env_key,
            )
            self._report_blocked(desired)
            actions = plan_step(desired, observed, self._backoff, now)
            actions.events.extend(failover_events + autoscale_events)
            actions.events.extend(self.rollouts.advance(workloads, desired, observed))
            if not self.gate():  # paused past the lease mid-pass: the new leader acts, not this one
                raise FencedError("the leader lease ran out during the pass; nothing was changed")
            started = self._act(actions)
            self._record(observed, started, actions, desired)
            self.metrics.observed(desired, observed)
            self.metrics.events(actions.events)
            return actions

    def _refresh_drivers(self, clusters: dict[str, Cluster]) -> None:
        for name, cluster in clusters.items():
            kind = cluster.spec.driver.type
            if name in self._drivers and self._driver_types.get(name) == kind:
                continue
            try:
                self._drivers[name] = self.make_driver(kind, name, self.home)
                self._driver_types[name] = kind
                self._said.pop(f"driver/{name}", None)
            except PolycloudError as e:
                self._say(f"driver/{name}", "error", "DriverUnavailable", str(e), cluster=name)

    def _observe(self) -> dict[str, list[ReplicaStatus]]:
        observed: dict[str, list[ReplicaStatus]] = {}
        for name, driver in self._drivers.items():
            try:
                observed[name] = driver.list_replicas()
            except PolycloudError as e:
                self._say(f"observe/{name}", "warning", "ClusterUnreachable", str(e), cluster=name)
        return observed

    def _act(self, actions: Actions) -> list[ReplicaStatus]:
        for cluster, replica_id in actions.stop:
            self._drivers[cluster].stop_replica(replica_id)
        started: list[ReplicaStatus] = []
        for spec in actions.start:
            try:
                started.append(self._drivers[spec.cluster].start_replica(spec))
                self._said.pop(f"start/{spec.cluster}", None)
            except PolycloudError as e:
                key = f"start/{spec.cluster}"
                self._say(key, "warning", "StartFailed", str(e), spec.service, spec.cluster)
        return started

    def _without_held(
        self,
        observed: dict[str, list[ReplicaStatus]],
        workloads: list[WorkloadState],
        delays: dict[str, float],
        canaries: dict[str, Canary],
        held: dict[str, list[WorkloadState]],
    ) -> dict[str, list[ReplicaStatus]]:
        """`observed` without the replicas of revisions held for a flag: they take none of a service's
        own traffic, so autoscaling and failover do not count them."""
        groups = desired_state(
            workloads, delays, secrets=self.secrets, canaries=canaries, held=held, env_key=self.env_key
        ).held
        hashes = {(g.service, g.cluster, g.template.spec_hash) for gs in groups.values() for g in gs}
        return {
            cluster: [r for r in rs if (r.service, r.cluster, r.spec_hash) not in hashes]
            for cluster, rs in observed.items()
        }

    def _held(self, workloads: list[WorkloadState]) -> dict[str, list[WorkloadState]]:
        """Per service, the older revisions its flag routes to, placed like the service."""
        held: dict[str, list[WorkloadState]] = {}
        for workload in workloads:
            for number in sorted(held_revisions(workload)):
                key = (workload.name, number)
                if key not in self._revisions:
                    self._revisions[key] = self._revision_state(workload.name, number)
                revision = self._revisions[key]
                if revision is not None:
                    held.setdefault(workload.name, []).append(held_state(workload, revision))
        return held

    def _revision_state(self, name: str, number: int) -> WorkloadState | None:
        """Revision `number` of service `name`; None (and an event) when it cannot run."""
        try:
            r = self.store.revision(name, number)
            Service.model_validate(r.spec)
        except (NotFoundError, ValidationError) as e:
            message = f"r{number}, which its flag routes to, cannot run: {e}"
            self._say(f"held/{name}/{number}", "warning", "HeldRevisionMissing", message, workload=name)
            return None
        return WorkloadState.of_revision(r)

    def _report_blocked(self, desired: DesiredState) -> None:
        for key in [k for k in self._said if k.startswith("blocked/")]:
            if key.removeprefix("blocked/") not in desired.blocked:
                del self._said[key]  # unblocked: a later block is news again
        for service, why in desired.blocked.items():
            self._say(f"blocked/{service}", "error", "ServiceBlocked", why, workload=service)
        for (service, number), why in desired.unheld.items():
            message = f"r{number}, which its flag routes to, cannot start: {why}"
            self._say(
                f"unheld/{service}/{number}", "warning", "HeldRevisionBlocked", message, workload=service
            )

    def _say(
        self,
        key: str,
        level: EventLevel,
        reason: str,
        message: str,
        workload: str | None = None,
        cluster: str | None = None,
    ) -> None:
        """Record an event once per distinct message for `key` (no repeats every pass)."""
        if self._said.get(key) == message:
            return
        self._said[key] = message
        self.store.add_events(
            [EventInput(level=level, reason=reason, message=message, workload=workload, cluster=cluster)]
        )

    def _record(
        self,
        observed: dict[str, list[ReplicaStatus]],
        started: list[ReplicaStatus],
        actions: Actions,
        desired: DesiredState,
    ) -> None:
        """Write the observed snapshot when it changed, and this pass's events.

        A replica whose content matches its group's current template is recorded at the current
        revision: a revision that changes nothing a replica runs (say, traffic shares) does not roll
        replicas, yet they run it all the same. Outdated replicas keep their own revision, so that
        "every replica on the current revision" means the rollout is done.
        """
        stopping = {replica_id for _, replica_id in actions.stop}
        replicas: dict[str, ReplicaStatus] = {}
        for statuses in observed.values():
            for r in statuses:
                replicas[r.id] = r
        for r in started:
            replicas[r.id] = r
        records = [
            ReplicaRecord(
                id=r.id,
                workload=r.service,
                cluster=r.cluster,
                role=r.role,
                revision=_revision(r, desired),
                endpoint=r.endpoint,
                pid=r.pid,
                state="stopping" if r.id in stopping else r.state,
                message=r.message,
            )
            for r in sorted(replicas.values(), key=lambda r: r.id)
        ]
        fingerprint = [Fingerprint(r.id, r.state, r.endpoint, r.pid, r.revision, r.role) for r in records]
        if fingerprint != self._snapshot:
            self.store.replace_replicas(records)
            self._snapshot = fingerprint
            self._ready = _ready(records)
        if actions.events:
            self.store.add_events(actions.events)

    def close(self) -> None:
        for driver in self._drivers.values():
            driver.close()


def _revision(replica: ReplicaStatus, desired: DesiredState) -> int:
    key = (replica.service, replica.cluster)
    for group in (desired.canaries.get(key), desired.groups.get(key), *desired.held.get(key, [])):
        if group is not None and group.template.spec_hash == replica.spec_hash:
            return group.template.revision
    return replica.revision


def _ready(records: list[ReplicaRecord]) -> dict[str, Counter[int]]:
    """Per service, how many ready replicas each revision has."""
    counts: dict[str, Counter[int]] = {}
    for r in records:
        if r.state == "ready":
            counts.setdefault(r.workload, Counter())[r.revision] += 1
    return counts


def _serving(ready: dict[str, Counter[int]], held: dict[str, set[int]]) -> dict[str, int]:
    """Per service, the revision most of its ready replicas run (the older one on a tie): the baseline
    a new canary is measured against. Revisions kept only for a flag's routing do not count while
    another one has ready replicas."""
    serving: dict[str, int] = {}
    for name, counts in ready.items():
        own = Counter({rev: n for rev, n in counts.items() if rev not in held.get(name, set())}) or counts
        serving[name] = min(own, key=lambda rev: (-own[rev], rev))
    return serving
