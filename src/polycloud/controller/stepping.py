"""One reconcile decision (pure): given desired groups and observed replicas, what to start and stop.

Rolling updates keep at least `count` ready replicas (max surge one, max unavailable zero); failed
replicas are cleared and replaced after a growing back-off so a crash loop does not spin. A canary's
group and the groups of revisions a flag routes to run beside a (service, cluster)'s own group, each
with the replicas of its template.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from polycloud.controller.desired import DesiredState, ReplicaGroup
from polycloud.drivers.base import ReplicaSpec, ReplicaStatus
from polycloud.state import EventInput
from polycloud.state.records import EventLevel

GroupKey = tuple[str, str]  # (service, cluster)
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 30.0


@dataclass
class Backoff:
    """Crash-loop back-off per (service, cluster): a first failure is replaced at once (drift repair);
    repeated ones wait 0.5 s, 1 s, 2 s ... up to 30 s until a replica of the group is ready again."""

    failures: dict[GroupKey, int] = field(default_factory=dict)
    not_before: dict[GroupKey, float] = field(default_factory=dict)

    def failed(self, key: GroupKey, now: float) -> None:
        n = self.failures.get(key, 0) + 1
        self.failures[key] = n
        delay = 0.0 if n == 1 else min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (n - 1))
        self.not_before[key] = now + delay

    def healthy(self, key: GroupKey) -> None:
        self.failures.pop(key, None)
        self.not_before.pop(key, None)

    def waiting(self, key: GroupKey, now: float) -> bool:
        return now < self.not_before.get(key, 0.0)


@dataclass
class Actions:
    start: list[ReplicaSpec] = field(default_factory=list)
    stop: list[tuple[str, str]] = field(default_factory=list)
    """(cluster, replica id)."""
    events: list[EventInput] = field(default_factory=list)


def plan_step(
    desired: DesiredState,
    observed: Mapping[str, list[ReplicaStatus]],
    backoff: Backoff,
    now: float,
) -> Actions:
    """Decide the next actions for every (service, cluster) seen in desired or observed state."""
    actions = Actions()
    by_group: dict[GroupKey, list[ReplicaStatus]] = defaultdict(list)
    for cluster, replicas in observed.items():
        for r in replicas:
            by_group[(r.service, cluster)].append(r)
    declared = set(desired.groups) | set(desired.canaries)
    for key in sorted(set(by_group) | {k for k in declared if k[1] in observed}):
        if key[0] in desired.blocked:
            continue  # its new revision cannot start: keep what runs untouched (max unavailable 0)
        replicas = by_group.get(key, [])
        beside = _beside(desired, key)
        if not beside:
            _plan_group(key, desired.groups.get(key), replicas, backoff, now, actions)
            continue
        # A canary group, or a held revision's, runs beside the service's own: each manages the
        # replicas of its own template.
        hashes = {group.template.spec_hash for group, _ in beside}
        rest = [r for r in replicas if r.spec_hash not in hashes]
        _plan_group(key, desired.groups.get(key), rest, backoff, now, actions, everything=replicas)
        for group, track in beside:
            mine = [r for r in replicas if r.spec_hash == group.template.spec_hash]
            _plan_group(key, group, mine, backoff, now, actions, everything=replicas, track=track)
    return actions


def _beside(desired: DesiredState, key: GroupKey) -> list[tuple[ReplicaGroup, str]]:
    """The groups that run beside `key`'s own, each with the name of its crash-loop back-off."""
    canary = desired.canaries.get(key)
    beside = [(canary, "canary")] if canary is not None else []
    return beside + [(g, f"r{g.template.revision}") for g in desired.held.get(key, [])]


def _plan_group(
    key: GroupKey,
    group: ReplicaGroup | None,
    replicas: list[ReplicaStatus],
    backoff: Backoff,
    now: float,
    actions: Actions,
    *,
    everything: list[ReplicaStatus] | None = None,
    track: str = "",
) -> None:
    """Plan one group; `everything` is every replica of the (service, cluster) when two groups share
    it (ordinals stay unique), and `track` names the group's own crash-loop back-off."""
    cluster = key[1]
    backoff_key = (key[0], f"{cluster}/{track}") if track else key
    failed = [r for r in replicas if r.state == "failed"]
    for r in failed:
        backoff.failed(backoff_key, now)
        actions.stop.append((cluster, r.id))
        actions.events.append(_event("warning", "ReplicaFailed", f"{r.id} failed: {r.message}", key))
    alive = [r for r in replicas if r.state in ("starting", "ready")]
    if group is None:
        for r in alive:
            actions.stop.append((cluster, r.id))
            actions.events.append(_event("info", "ReplicaRemoved", f"{r.id} is no longer declared", key))
        return
    current = [r for r in alive if r.spec_hash == group.template.spec_hash]
    outdated = [r for r in alive if r.spec_hash != group.template.spec_hash]
    if not failed and sum(1 for r in current if r.state == "ready") >= group.count:
        backoff.healthy(backoff_key)  # only a whole, healthy group ends a crash loop
    excess = max(0, len(current) - group.count)
    surplus = sorted(current, key=lambda r: (r.state == "ready", -_ordinal(r.id)))[:excess]
    for r in surplus:
        actions.stop.append((cluster, r.id))
        actions.events.append(_event("info", "ScaledDown", f"{r.id} stopped: {group.count} wanted", key))
    _roll(key, backoff_key, group, current, outdated, everything or replicas, backoff, now, actions)


def _roll(
    key: GroupKey,
    backoff_key: GroupKey,
    group: ReplicaGroup,
    current: list[ReplicaStatus],
    outdated: list[ReplicaStatus],
    everything: list[ReplicaStatus],
    backoff: Backoff,
    now: float,
    actions: Actions,
) -> None:
    cluster = key[1]
    kept = min(len(current), group.count)
    limit = group.count + (1 if outdated else 0)
    to_start = max(0, min(group.count - kept, limit - kept - len(outdated)))
    if to_start and not backoff.waiting(backoff_key, now):
        taken = [r.id for r in everything] + [s.id for s in actions.start]
        for ordinal in _free_ordinals(taken, key, to_start):
            spec = _spec(group, f"{key[0]}-{cluster}-{ordinal}")
            actions.start.append(spec)
            actions.events.append(
                _event("info", "ReplicaStarting", f"{spec.id} (revision r{spec.revision})", key)
            )
    ready_current = sum(1 for r in current if r.state == "ready")
    unready_old = [r for r in outdated if r.state != "ready"]
    ready_old = sorted((r for r in outdated if r.state == "ready"), key=lambda r: -_ordinal(r.id))
    removable = max(0, min(ready_current, group.count) + len(ready_old) - group.count)
    for r in unready_old + ready_old[:removable]:
        actions.stop.append((cluster, r.id))
        actions.events.append(_event("info", "ReplicaReplaced", f"{r.id} replaced by the new revision", key))


def _free_ordinals(ids: Iterable[str], key: GroupKey, n: int) -> list[int]:
    prefix = f"{key[0]}-{key[1]}-"
    used = {_ordinal(i) for i in ids if i.startswith(prefix)}
    free: list[int] = []
    k = 0
    while len(free) < n:
        if k not in used:
            free.append(k)
        k += 1
    return free


def _ordinal(replica_id: str) -> int:
    tail = replica_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _spec(group: ReplicaGroup, replica_id: str) -> ReplicaSpec:
    t = group.template
    return ReplicaSpec(
        id=replica_id,
        service=t.service,
        cluster=t.cluster,
        revision=t.revision,
        role=t.role,
        spec_hash=t.spec_hash,
        model_path=t.model_path,
        model_sha256=t.model_sha256,
        env=dict(t.env),
        delay_ms=t.delay_ms,
        protocol=t.protocol,
        runtime=t.runtime,
    )


def _event(level: EventLevel, reason: str, message: str, key: GroupKey) -> EventInput:
    return EventInput(level=level, reason=reason, message=message, workload=key[0], cluster=key[1])
