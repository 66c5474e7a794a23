"""Incidents from events: what opens one, what joins its timeline, what resolves it.

    opens                      kind         keyed by           resolved by
    FailoverStarted            failover     service            FailbackCompleted of the service
    RolloutRolledBack          rollback     service            quiet for `quiet_s`
    SloBurnAlert               slo-burn     service            SloBurnResolved of the service
    SloBudgetExhausted         slo-budget   service            quiet for `quiet_s`
    BudgetAlert                budget       workload or none   quiet for `quiet_s`
    DrillStarted               drill        cluster            DrillEnded of the cluster

An opening event takes with it the events of the same service (or cluster) of the `lead_s` seconds
before (the replica failures that led to a failover, say). While open, every event of the incident's
service, or of its cluster, joins the timeline (for a drill, every event of its cluster); an event that
opens an incident of a kind already open for that service (cluster) joins it instead of opening another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from polycloud.state.records import EventRecord
from polycloud.state.repositories_runtime import IncidentStore

OPENERS = {
    "FailoverStarted": "failover",
    "RolloutRolledBack": "rollback",
    "SloBurnAlert": "slo-burn",
    "SloBudgetExhausted": "slo-budget",
    "BudgetAlert": "budget",
    "DrillStarted": "drill",
}
RESOLVERS = {"FailbackCompleted": "failover", "SloBurnResolved": "slo-burn", "DrillEnded": "drill"}
BY_CLUSTER = {"drill"}
"""Kinds keyed by cluster rather than by service."""
MAX_TIMELINE = 200


@dataclass
class _Open:
    id: int
    kind: str
    service: str | None
    cluster: str | None
    last: datetime
    size: int = 0
    pending: list[int] = field(default_factory=list)


class IncidentTracker:
    """Reads events in order and keeps incidents in the store; call `feed` with new events."""

    def __init__(self, store: IncidentStore, *, quiet_s: float = 900.0, lead_s: float = 120.0) -> None:
        """Track incidents in `store`, starting with those open there."""
        self._store = store
        self._quiet = timedelta(seconds=quiet_s)
        self._lead = timedelta(seconds=lead_s)
        self._open: dict[int, _Open] = {
            i.id: _Open(i.id, i.kind, i.service, i.cluster, i.updated_at, len(i.timeline))
            for i in store.incidents(state="open", limit=500)
        }
        self.opened: list[int] = []
        """Incidents opened by the last `feed` (for alerting)."""

    def feed(self, events: list[EventRecord], now: datetime) -> None:
        """Take new events (oldest first); open, extend and resolve incidents accordingly."""
        self.opened = []
        for e in events:
            kind = OPENERS.get(e.reason)
            target = self._find(kind, e) if kind else None
            if kind and target is None:
                self._start(kind, e)
                continue
            for incident in [target] if target else self._related(e):
                self._attach(incident, e)
            resolved = RESOLVERS.get(e.reason)
            if resolved:
                for incident in [
                    i for i in self._open.values() if i.kind == resolved and _same(i, resolved, e)
                ]:
                    self._finish(incident)
        self._flush()
        for incident in [i for i in self._open.values() if now - i.last >= self._quiet]:
            self._finish(incident)

    def _find(self, kind: str, e: EventRecord) -> _Open | None:
        return next((i for i in self._open.values() if i.kind == kind and _same(i, kind, e)), None)

    def _related(self, e: EventRecord) -> list[_Open]:
        return [
            i
            for i in self._open.values()
            if (i.service is not None and e.workload == i.service)
            or (
                i.cluster is not None
                and e.cluster == i.cluster
                and (i.kind in BY_CLUSTER or e.workload in (None, i.service))
            )
        ]

    def _start(self, kind: str, e: EventRecord) -> None:
        lead = (
            [
                p.id
                for p in self._store.events(workload=e.workload, limit=50)
                if p.id < e.id and p.time >= e.time - self._lead
            ]
            if e.workload
            else []
        )
        subject = e.cluster if kind in BY_CLUSTER else e.workload
        title = f"{kind} of {subject or 'the fleet'}: {e.message}"
        incident_id = self._store.open_incident(
            kind, title, [*lead, e.id], service=e.workload, cluster=e.cluster
        )
        self._open[incident_id] = _Open(incident_id, kind, e.workload, e.cluster, e.time, len(lead) + 1)
        self.opened.append(incident_id)

    def _attach(self, incident: _Open, e: EventRecord) -> None:
        if incident.size < MAX_TIMELINE:
            incident.pending.append(e.id)
            incident.size += 1
        incident.last = e.time

    def _flush(self) -> None:
        for incident in self._open.values():
            if incident.pending:
                self._store.attach_incident_events(incident.id, incident.pending)
                incident.pending = []

    def _finish(self, incident: _Open) -> None:
        self._store.attach_incident_events(incident.id, incident.pending, resolve=True)
        del self._open[incident.id]


def _same(incident: _Open, kind: str, e: EventRecord) -> bool:
    """Whether `e` is about what `incident` is keyed by (its cluster for a drill, else its service)."""
    if kind in BY_CLUSTER:
        return incident.cluster == e.cluster
    return incident.service == e.workload
