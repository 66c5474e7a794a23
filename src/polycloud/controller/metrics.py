"""Prometheus metrics of the controller, on a registry of its own (served by the control plane's
`/metrics`, see `polycloud.obs.federation`).

    polycloud_controller_replicas_desired{service, cluster, role}   replicas the last pass asked for
    polycloud_controller_replicas_ready{service, cluster, role}     replicas observed ready
    polycloud_controller_failovers_total{service, cluster}          failovers started (cluster: the primary)
    polycloud_controller_failbacks_total{service, cluster}          failbacks completed
    polycloud_controller_rollouts_total{service, outcome}           rollouts ended: promoted, rolled-back
    polycloud_controller_reconcile_duration_seconds                 one reconcile pass
    polycloud_controller_reconcile_errors_total                     passes that failed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from polycloud.controller.desired import DesiredState
from polycloud.drivers.base import ReplicaStatus
from polycloud.state import EventInput

PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROLLOUT_OUTCOMES = {"RolloutPromoted": "promoted", "RolloutRolledBack": "rolled-back"}


class ControllerMetrics:
    """What the reconciler does, as Prometheus metrics."""

    def __init__(self) -> None:
        """Create the metrics on a fresh registry."""
        self.registry = r = CollectorRegistry(auto_describe=True)
        where = ["service", "cluster", "role"]
        self._desired = Gauge(
            "polycloud_controller_replicas_desired", "Replicas asked for.", where, registry=r
        )
        self._ready = Gauge(
            "polycloud_controller_replicas_ready", "Replicas observed ready.", where, registry=r
        )
        self._failovers = Counter(
            "polycloud_controller_failovers", "Failovers started.", ["service", "cluster"], registry=r
        )
        self._failbacks = Counter(
            "polycloud_controller_failbacks", "Failbacks completed.", ["service", "cluster"], registry=r
        )
        self._rollouts = Counter(
            "polycloud_controller_rollouts", "Rollouts ended, by outcome.", ["service", "outcome"], registry=r
        )
        self.duration = Histogram(
            "polycloud_controller_reconcile_duration_seconds",
            "Time of one reconcile pass.",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "polycloud_controller_reconcile_errors", "Reconcile passes that failed.", registry=r
        )
        self._shown: set[tuple[str, str, str]] = set()

    def observed(self, desired: DesiredState, observed: Mapping[str, list[ReplicaStatus]]) -> None:
        """Set the desired and ready gauges from one pass (series of groups gone are removed)."""
        wanted: dict[tuple[str, str, str], int] = {}
        held = [g for groups in desired.held.values() for g in groups]
        for group in [*desired.groups.values(), *desired.canaries.values(), *held]:
            key = (group.service, group.cluster, group.template.role)
            wanted[key] = wanted.get(key, 0) + group.count
        ready: dict[tuple[str, str, str], int] = {}
        for statuses in observed.values():
            for s in statuses:
                if s.state == "ready":
                    key = (s.service, s.cluster, s.role)
                    ready[key] = ready.get(key, 0) + 1
        keys = set(wanted) | set(ready)
        for gone in self._shown - keys:
            self._desired.remove(*gone)
            self._ready.remove(*gone)
        for key in keys:
            self._desired.labels(*key).set(wanted.get(key, 0))
            self._ready.labels(*key).set(ready.get(key, 0))
        self._shown = keys

    def events(self, events: Iterable[EventInput]) -> None:
        """Count failovers, failbacks and ended rollouts among a pass's events."""
        for e in events:
            service, cluster = e.workload or "", e.cluster or ""
            if e.reason == "FailoverStarted":
                self._failovers.labels(service, cluster).inc()
            elif e.reason == "FailbackCompleted":
                self._failbacks.labels(service, cluster).inc()
            elif e.reason in ROLLOUT_OUTCOMES:
                self._rollouts.labels(service, ROLLOUT_OUTCOMES[e.reason]).inc()
