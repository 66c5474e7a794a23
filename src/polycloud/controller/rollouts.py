"""Canary rollouts: start them, step them through their traffic shares, promote or roll back.

A Service whose spec has `rollout` does not roll its replicas in place when a new revision changes what
they run. Instead, while the revision that served before (the baseline) keeps its replicas, the new one
(the canary) gets replicas of its own, sized to its share of the traffic, and the gateways send it that
share (`rollout.steps`, e.g. 5 → 25 → 50 → 100 %). A step's bake begins once its canary replicas are all
ready and lasts `bakeSeconds`; the canary is judged all along on the gateways' per-revision counts
(`polycloud.controller.judging`). Failing a step, crash-looping or never getting ready rolls back: a new
revision restores the baseline, the canary's replicas stop. Passing the last step promotes: the canary
is the desired state and the baseline's replicas are rolled away.

A paused rollout keeps its share of traffic and is still judged (a failing canary is rolled back even
while paused); it only does not move to the next step. Every decision is recorded in the store (the
`rollouts` table, plus an event), so a restarted control plane carries on where this one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from polycloud.controller.desired import Canary, DesiredState, ReplicaGroup, SecretLookup, desired_state
from polycloud.controller.judging import Window, judge, snapshot, windows
from polycloud.drivers.base import ReplicaStatus
from polycloud.errors import PolycloudError
from polycloud.exchange import RevisionCounts
from polycloud.spec.models import Rollout, Service
from polycloud.state import EventInput, RolloutRecord, RolloutState, WorkloadState
from polycloud.state.records import AuditInput, EventLevel
from polycloud.state.repositories_runtime import RolloutStore

READY_TIMEOUT_S = 180.0
"""A step whose canary replicas are not all ready after this long is rolled back."""
MAX_CANARY_FAILURES = 3
"""Canary replicas that may fail (crash, fail to load) before the rollout is rolled back."""
COUNTS_MAX_AGE_S = 30.0
"""Counts of gateways silent for longer are left out of a judgement."""
FIGURES_EVERY_S = 1.0
AUTHOR = "controller/rollout"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Watch:
    """What the manager remembers of one rollout between passes (rebuilt after a restart)."""

    waiting_since: datetime | None = None
    failed: set[tuple[str, int | None]] = field(default_factory=set)
    figures_at: datetime | None = None


@dataclass
class RolloutManager:
    store: RolloutStore
    clock: Callable[[], datetime] = _utcnow

    def __post_init__(self) -> None:
        self._watch: dict[int, _Watch] = {}
        self._events: list[EventInput] = []

    # -- before desired state: which services run a canary this pass -------------------------
    def canaries(
        self,
        workloads: list[WorkloadState],
        serving: Mapping[str, int],
        delays: Mapping[str, float],
        secrets: SecretLookup,
        env_key: bytes = b"",
    ) -> dict[str, Canary]:
        """Start, supersede and list the rollouts in progress; `serving` is the revision each service's
        ready replicas run, for the baseline of a new rollout."""
        active = {r.service: r for r in self.store.active_rollouts()}
        current = {w.name: w for w in workloads if w.kind == "Service"}
        for name, gone in active.items():
            if name not in current:
                self._end(gone, "superseded", "the service is no longer declared")
        result: dict[str, Canary] = {}
        for name, workload in current.items():
            row = self._rollout_for(workload, active.get(name), serving, delays, (secrets, env_key))
            if row is None:
                continue
            baseline = self._state_of(name, row.baseline)
            if baseline is not None:
                result[name] = Canary(baseline, row.weight)
        return result

    def _rollout_for(
        self,
        workload: WorkloadState,
        row: RolloutRecord | None,
        serving: Mapping[str, int],
        delays: Mapping[str, float],
        env: tuple[SecretLookup, bytes],
    ) -> RolloutRecord | None:
        if row is not None and row.canary == workload.number:
            return row
        rules = _rules(workload)
        baseline = row.baseline if row is not None else self._baseline(workload.name, serving)
        if rules is None or baseline is None or baseline >= workload.number or self._done(workload):
            if row is not None:
                self._end(row, "superseded", f"superseded by r{workload.number}")
            return None
        old = self._state_of(workload.name, baseline)
        if old is None or not _differs(old, workload, delays, *env):
            if row is not None:
                self._end(row, "superseded", f"superseded by r{workload.number}")
            return None
        steps = [s for s in rules.steps if s < 100] + [100]
        started = self.store.start_rollout(
            workload.name, baseline=baseline, canary=workload.number, steps=sorted(set(steps))
        )
        self._say("info", "RolloutStarted", started, f"canary r{started.canary} against r{baseline}")
        self._audit("rollout.start", started, started.message)
        return started

    def _baseline(self, name: str, serving: Mapping[str, int]) -> int | None:
        """What a new rollout of `name` starts from: the revision its ready replicas serve — except a
        canary that was just taken back (aborted or rolled back), whose replicas may still outnumber the
        baseline's for a moment; the revision it was measured against is the baseline then."""
        found = serving.get(name)
        latest = self.store.rollouts(name, limit=1)
        if latest and latest[0].state in ("aborted", "rolled-back") and latest[0].canary == found:
            return latest[0].baseline
        return found

    def _done(self, workload: WorkloadState) -> bool:
        latest = self.store.rollouts(workload.name, limit=1)
        return bool(latest) and latest[0].canary == workload.number and not latest[0].active

    def _state_of(self, name: str, number: int) -> WorkloadState | None:
        try:
            r = self.store.revision(name, number)
        except PolycloudError:
            return None
        return WorkloadState.of_revision(r)

    # -- after desired state: judge, step, promote, roll back --------------------------------
    def advance(
        self,
        workloads: list[WorkloadState],
        desired: DesiredState,
        observed: Mapping[str, list[ReplicaStatus]],
    ) -> list[EventInput]:
        """Move every active rollout on by what this pass observed; returns the events to record."""
        now = self.clock()
        rules_of = {w.name: _rules(w) for w in workloads if w.kind == "Service"}
        live: set[int] = set()
        for row in self.store.active_rollouts():
            rules = rules_of.get(row.service)
            if rules is None or row.canary not in _numbers(workloads, row.service):
                continue  # superseded at the next `canaries`
            live.add(row.id)
            self._advance(row, rules, desired, observed, now)
        self._watch = {k: v for k, v in self._watch.items() if k in live}
        events, self._events = self._events, []
        return events

    def _advance(
        self,
        row: RolloutRecord,
        rules: Rollout,
        desired: DesiredState,
        observed: Mapping[str, list[ReplicaStatus]],
        now: datetime,
    ) -> None:
        watch = self._watch.setdefault(row.id, _Watch())
        groups = [g for (svc, _), g in desired.canaries.items() if svc == row.service]
        hashes = {g.template.spec_hash for g in groups}
        mine = [
            r for rs in observed.values() for r in rs if r.service == row.service and r.spec_hash in hashes
        ]
        for r in mine:
            if r.state == "failed":
                watch.failed.add((r.id, r.pid))
        if len(watch.failed) >= MAX_CANARY_FAILURES:
            last = next((r.message for r in mine if r.state == "failed" and r.message), "")
            why = f"{len(watch.failed)} canary replicas failed" + (f" (last: {last})" if last else "")
            self._roll_back(row, why)
            return
        if row.step_started_at is None:
            self._wait_for_replicas(row, groups, mine, watch, now)
            return
        counts = self.store.revision_counts(row.service, COUNTS_MAX_AGE_S)
        self._judge(row, rules, counts, watch, now)

    def _wait_for_replicas(
        self,
        row: RolloutRecord,
        groups: list[ReplicaGroup],
        mine: list[ReplicaStatus],
        watch: _Watch,
        now: datetime,
    ) -> None:
        ready = all(
            sum(1 for r in mine if r.cluster == g.cluster and r.state == "ready") >= g.count for g in groups
        )
        if not ready or row.state == "paused":
            watch.waiting_since = watch.waiting_since or now
            if ready or (now - watch.waiting_since).total_seconds() < READY_TIMEOUT_S:
                return
            self._roll_back(row, f"canary replicas not ready within {READY_TIMEOUT_S:.0f} s")
            return
        watch.waiting_since = None
        counts = self.store.revision_counts(row.service, COUNTS_MAX_AGE_S)
        started = self.store.progress_rollout(row.id, step_started_at=now, window=snapshot(counts))
        if started is not None:
            message = f"step {row.step + 1}/{len(row.steps)}: {row.weight}% of traffic to r{row.canary}"
            self._say("info", "RolloutStep", started, message)

    def _judge(
        self, row: RolloutRecord, rules: Rollout, counts: list[RevisionCounts], watch: _Watch, now: datetime
    ) -> None:
        seen = windows(counts, row.window)
        canary = seen.get(row.canary) or Window()
        baseline = seen.get(row.baseline) or Window()
        figures = {"canary": canary.to_json(), "baseline": baseline.to_json()}
        failure = judge(canary, baseline, rules)
        if failure is not None:
            self.store.progress_rollout(row.id, figures=figures)
            self._roll_back(row, failure)
            return
        assert row.step_started_at is not None
        baked = (now - row.step_started_at).total_seconds() >= rules.bakeSeconds
        if row.state == "paused" or not baked:
            due = watch.figures_at is None or (now - watch.figures_at).total_seconds() >= FIGURES_EVERY_S
            if due and figures != row.figures:
                self.store.progress_rollout(row.id, figures=figures)
                watch.figures_at = now
            return
        if row.step + 1 >= len(row.steps):
            note = "" if canary.attempts >= 1 else " (no traffic reached the canary: judged on health only)"
            self.store.progress_rollout(row.id, figures=figures)
            self._end(row, "succeeded", f"r{row.canary} promoted after {len(row.steps)} steps{note}")
            return
        nxt = self.store.progress_rollout(
            row.id, step=row.step + 1, step_started_at=None, window={}, figures=figures
        )
        if nxt is not None:
            self._say("info", "RolloutStep", nxt, f"step {row.step + 1} passed; now {nxt.weight}%")

    # -- endings --------------------------------------------------------------------------------
    def _roll_back(self, row: RolloutRecord, why: str) -> None:
        self._end(row, "rolled-back", f"rolled back to r{row.baseline}: {why}")

    def _end(self, row: RolloutRecord, state: RolloutState, message: str) -> None:
        try:
            ended = self.store.end_rollout(
                row.service,
                state=state,
                message=message,
                author=AUTHOR,
                rollout_id=row.id,
            )
        except PolycloudError:
            return  # ended by someone else meanwhile (an operator's abort): nothing left to do
        level: EventLevel = "error" if state == "rolled-back" else "info"
        reason = {"succeeded": "RolloutPromoted", "rolled-back": "RolloutRolledBack"}.get(
            state, "RolloutSuperseded"
        )
        self._say(level, reason, ended, message)
        self._audit(f"rollout.{'promote' if state == 'succeeded' else state}", ended, message)

    def _audit(self, action: str, row: RolloutRecord, message: str) -> None:
        """The controller's decisions change the desired state too: they go on the audit trail."""
        detail = {"baseline": row.baseline, "canary": row.canary, "message": message}
        entry = AuditInput(AUTHOR, action, row.service, "ok", row.canary, detail)
        try:
            self.store.audit(entry)
        except PolycloudError as e:
            self._events.append(
                EventInput(level="warning", reason="AuditFailed", message=str(e), workload=row.service)
            )

    def _say(self, level: EventLevel, reason: str, row: RolloutRecord, message: str) -> None:
        self._events.append(EventInput(level=level, reason=reason, message=message, workload=row.service))


def _rules(workload: WorkloadState) -> Rollout | None:
    return Service.model_validate(workload.spec).spec.rollout


def _numbers(workloads: list[WorkloadState], name: str) -> set[int]:
    return {w.number for w in workloads if w.name == name}


def _differs(
    old: WorkloadState, new: WorkloadState, delays: Mapping[str, float], secrets: SecretLookup, key: bytes
) -> bool:
    """Whether `new` runs anything other than `old` does in some cluster (else no canary is needed)."""
    before = desired_state([old], delays, secrets=secrets, env_key=key)
    after = desired_state([new], delays, secrets=secrets, env_key=key)
    if new.name in after.blocked:
        return False  # it cannot start at all: the reconciler reports it as blocked
    hashes = {k: g.template.spec_hash for k, g in before.groups.items()}
    return any(hashes.get(k) != g.template.spec_hash for k, g in after.groups.items() if g.count)
