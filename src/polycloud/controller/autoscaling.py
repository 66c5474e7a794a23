"""Autoscaling and burst (pure): replica counts per (service, cluster) from the gateways' load reports.

Load on a cluster is the sum, over every gateway with a fresh report, of that (service, cluster)'s mean
requests in flight over the gateway's last window. Two rules, each quick to scale up and slow to scale
down:

- **Autoscaling** (a Service with an `autoscaling` block), per active cluster:
  `ceil(load / targetInFlight)` clamped to [minReplicas, maxReplicas].
- **Burst** (a placement with a `burst` assignment): the burst cluster runs 0 replicas at baseline.
  With `load` the sum over the active and burst clusters, `target` the service's `targetInFlight` (4
  without an autoscaling block) and `ready` the active clusters' ready replicas, the burst cluster gets
  `ceil((load - ready * target) / target)` replicas when that is positive, at most `maxReplicas` (with
  an autoscaling block) or the burst assignment's `replicas`; else 0.

A higher figure is applied as soon as one report shows it. A lower one is applied only once every
figure for `window_s` seconds has been below the current count, and then it is the highest of them;
a missing report (no fresh row for any cluster the rule reads) changes nothing and restarts that wait.
Without any report a group keeps its placement's count (burst: 0). Decisions depend only on the
arguments passed in, so tests drive it on a fake clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from polycloud.drivers.base import ReplicaStatus
from polycloud.exchange import LoadReport
from polycloud.spec.models import Autoscaling
from polycloud.state import EventInput, WorkloadState

GroupKey = tuple[str, str]
DEFAULT_BURST_TARGET = 4.0
"""Requests in flight per ready primary replica above which a burst starts, without an autoscaling block."""


@dataclass
class _Group:
    """The count the autoscaler holds for one (service, cluster), and its pending scale-down."""

    count: int
    lower_since: float | None = None
    """When figures first fell below `count` (None while they are not)."""
    lower_peak: int = 0
    """The highest figure since `lower_since`: what a scale-down goes to."""


def _autoscaling(spec: dict[str, Any]) -> Autoscaling | None:
    inner = spec.get("spec")
    block = inner.get("autoscaling") if isinstance(inner, dict) else None
    if not isinstance(block, dict):
        return None
    try:
        return Autoscaling.model_validate(block)
    except ValidationError:
        return None  # the spec layer refuses it at apply time; nothing to scale on


@dataclass
class Autoscaler:
    """Tracks every autoscaled or bursting group; `decide` returns replica-count overrides and events."""

    window_s: float = 60.0
    """How long a lower figure must hold before a scale-down."""
    groups: dict[GroupKey, _Group] = field(default_factory=dict)

    def decide(
        self,
        workloads: list[WorkloadState],
        observed: Mapping[str, list[ReplicaStatus]],
        load: list[LoadReport],
        now: float,
    ) -> tuple[dict[GroupKey, int], list[EventInput]]:
        """The counts to run and what changed.

        Args:
            workloads: The live workloads (Services with an autoscaling block or a burst assignment count).
            observed: Replicas per reachable cluster, for the primaries' ready replicas.
            load: Fresh load reports of every gateway (`Store.load`); stale ones must be left out.
            now: Monotonic seconds.

        Returns:
            (service, cluster) → replica count, and the events of this decision.
        """
        loads: dict[GroupKey, float] = {}
        for row in load:
            key = (row.service, row.cluster)
            loads[key] = loads.get(key, 0.0) + row.in_flight_mean
        overrides: dict[GroupKey, int] = {}
        events: list[EventInput] = []
        live: set[GroupKey] = set()
        for w in workloads:
            if w.kind != "Service":
                continue
            scaling = _autoscaling(w.spec)
            actives = [a for a in w.placement if a.get("role") == "active"]
            bursts = [a for a in w.placement if a.get("role") == "burst"]
            if scaling is not None:
                for a in actives:
                    key = (w.name, str(a["cluster"]))
                    live.add(key)
                    figure = None
                    if key in loads:
                        wanted = math.ceil(loads[key] / scaling.targetInFlight)
                        figure = min(scaling.maxReplicas, max(scaling.minReplicas, wanted))
                    start = min(scaling.maxReplicas, max(scaling.minReplicas, int(a["replicas"])))
                    self._apply(key, start, figure, now, overrides, events, burst=False)
            for b in bursts:
                key = (w.name, str(b["cluster"]))
                live.add(key)
                cap = scaling.maxReplicas if scaling is not None else int(b["replicas"])
                target = float(scaling.targetInFlight) if scaling is not None else DEFAULT_BURST_TARGET
                figure = self._burst_figure(w.name, actives, key, loads, observed, target, cap)
                self._apply(key, 0, figure, now, overrides, events, burst=True)
        for key in set(self.groups) - live:
            del self.groups[key]
        return overrides, events

    @staticmethod
    def _burst_figure(
        service: str,
        actives: list[dict[str, Any]],
        burst: GroupKey,
        loads: Mapping[GroupKey, float],
        observed: Mapping[str, list[ReplicaStatus]],
        target: float,
        cap: int,
    ) -> int | None:
        """Burst replicas the load calls for; None when a cluster it reads has no fresh report."""
        primaries = [str(a["cluster"]) for a in actives]
        if not primaries or any((service, c) not in loads for c in primaries):
            return None
        total = sum(loads[(service, c)] for c in primaries) + loads.get(burst, 0.0)
        ready = sum(
            1 for c in primaries for r in observed.get(c, []) if r.service == service and r.state == "ready"
        )
        excess = total - ready * target
        return min(cap, math.ceil(excess / target)) if excess > 0 else 0

    def _apply(
        self,
        key: GroupKey,
        start: int,
        figure: int | None,
        now: float,
        overrides: dict[GroupKey, int],
        events: list[EventInput],
        *,
        burst: bool,
    ) -> None:
        """Move one group towards `figure` (None: no fresh report) and record its override."""
        group = self.groups.get(key)
        if group is None:
            if figure is None and not burst:
                return  # never reported: the placement's count stands
            group = self.groups[key] = _Group(start)
        before = group.count
        if figure is None or figure >= group.count:
            group.lower_since = None
            if figure is not None and figure > group.count:
                group.count = figure
        elif group.lower_since is None:
            group.lower_since, group.lower_peak = now, figure
        else:
            group.lower_peak = max(group.lower_peak, figure)
            if now - group.lower_since >= self.window_s:
                group.count, group.lower_since = group.lower_peak, None
        overrides[key] = group.count
        if group.count != before:
            events.append(self._event(key, before, group.count, burst))

    def _event(self, key: GroupKey, before: int, after: int, burst: bool) -> EventInput:
        if burst and before == 0:
            reason, message = "BurstStarted", f"load over the primaries' target: {after} burst replica(s)"
        elif burst and after == 0:
            reason, message = "BurstEnded", f"load under target for {self.window_s:g} s: burst back to 0"
        elif after > before:
            reason, message = "ScaledUp", f"load calls for {after} replica(s), up from {before}"
        else:
            reason = "ScaledDown"
            message = f"load under {before} replica(s) for {self.window_s:g} s: down to {after}"
        return EventInput(level="info", reason=reason, message=message, workload=key[0], cluster=key[1])
