"""Active-passive failover (pure): scale the standby to full size while the primary is down.

The primary counts as down when none of its replicas has been ready for `grace_s`; it counts as
recovered once it has had all its replicas ready for `stabilise_s`, which keeps a flapping primary from
bouncing traffic back and forth. Decisions depend only on the observations and the clock passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from polycloud.drivers.base import ReplicaStatus
from polycloud.state import EventInput, WorkloadState

GroupKey = tuple[str, str]


@dataclass
class _Watch:
    primary: str
    standby: str
    full: int
    unready_since: float | None = None
    ready_since: float | None = None
    failed_over: bool = False


@dataclass
class Failover:
    """Tracks every active-passive service; `decide` returns replica-count overrides and events."""

    grace_s: float = 2.0
    stabilise_s: float = 30.0
    watches: dict[str, _Watch] = field(default_factory=dict)

    def decide(
        self, workloads: list[WorkloadState], observed: Mapping[str, list[ReplicaStatus]], now: float
    ) -> tuple[dict[GroupKey, int], list[EventInput]]:
        overrides: dict[GroupKey, int] = {}
        events: list[EventInput] = []
        live = set()
        for w in workloads:
            roles = {str(a["role"]): a for a in w.placement}
            if w.kind != "Service" or "standby" not in roles or "active" not in roles:
                continue
            live.add(w.name)
            primary, standby = str(roles["active"]["cluster"]), str(roles["standby"]["cluster"])
            full = int(roles["active"]["replicas"])
            watch = self.watches.get(w.name)
            if watch is None or (watch.primary, watch.standby, watch.full) != (primary, standby, full):
                watch = self.watches[w.name] = _Watch(primary, standby, full)
            ready = sum(1 for r in observed.get(primary, []) if r.service == w.name and r.state == "ready")
            event = self._step(watch, ready, now, primary in observed)
            if event:
                events.append(
                    EventInput(
                        level="warning" if watch.failed_over else "info",
                        reason=event[0],
                        message=event[1],
                        workload=w.name,
                        cluster=primary,
                    )
                )
            if watch.failed_over:
                overrides[(w.name, standby)] = full
        for name in set(self.watches) - live:
            del self.watches[name]
        return overrides, events

    def _step(self, watch: _Watch, ready: int, now: float, reachable: bool) -> tuple[str, str] | None:
        if ready == 0 or not reachable:
            watch.ready_since = None
            watch.unready_since = watch.unready_since if watch.unready_since is not None else now
            if not watch.failed_over and now - watch.unready_since >= self.grace_s:
                watch.failed_over = True
                return (
                    "FailoverStarted",
                    f"primary {watch.primary} has no ready replica; "
                    f"scaling standby {watch.standby} to {watch.full}",
                )
            return None
        watch.unready_since = None
        if ready >= watch.full:
            watch.ready_since = watch.ready_since if watch.ready_since is not None else now
        else:
            watch.ready_since = None
        if (
            watch.failed_over
            and watch.ready_since is not None
            and now - watch.ready_since >= self.stabilise_s
        ):
            watch.failed_over = False
            return (
                "FailbackCompleted",
                f"primary {watch.primary} stable for {self.stabilise_s:g} s; "
                f"standby {watch.standby} back to 1 replica",
            )
        return None
