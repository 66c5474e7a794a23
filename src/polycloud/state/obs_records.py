"""Records of observability state: per-minute SLI series, incidents and anomalies (detached values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from polycloud.state.records import EventRecord

SliSource = Literal["traffic", "probe"]
SLI_SOURCES: tuple[SliSource, ...] = ("traffic", "probe")
IncidentState = Literal["open", "resolved"]
INCIDENT_STATES: tuple[IncidentState, ...] = ("open", "resolved")


@dataclass(frozen=True)
class SliMinute:
    """Requests, errors and the p99 of one (service, cluster, source) in one UTC minute."""

    service: str
    cluster: str
    source: SliSource
    minute: datetime
    """The minute's start, UTC, seconds and microseconds 0."""
    requests: float
    errors: float
    p99_ms: float
    """Request-weighted mean of the p99s reported during the minute (0 without requests)."""


@dataclass(frozen=True)
class AnomalyInput:
    """A signal that left its robust baseline (see `polycloud.obs.detect`)."""

    service: str
    cluster: str
    signal: str
    """"latency", "error_rate", "rps", "drift" or "probe"."""
    value: float
    baseline: float
    score: float
    message: str
    time: datetime | None = None
    key_id: int | None = None
    """The inference key whose traffic this is (its cluster is then "*": every cluster)."""
    key_name: str | None = None


@dataclass(frozen=True)
class AnomalyRecord(AnomalyInput):
    """A stored anomaly."""

    id: int = 0

    def to_json(self) -> dict[str, Any]:
        """The API's shape."""
        return {
            "id": self.id,
            "time": self.time.isoformat() if self.time else None,
            "service": self.service,
            "cluster": self.cluster,
            "signal": self.signal,
            "value": round(self.value, 6),
            "baseline": round(self.baseline, 6),
            "score": round(self.score, 3),
            "message": self.message,
            **({"key": {"id": self.key_id, "name": self.key_name}} if self.key_id is not None else {}),
        }


@dataclass(frozen=True)
class IncidentRecord:
    """An incident and its timeline (events, oldest first)."""

    id: int
    kind: str
    """"failover", "rollback", "slo-burn", "slo-budget" or "budget"."""
    service: str | None
    cluster: str | None
    state: IncidentState
    title: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    timeline: list[EventRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The API's shape."""
        return {
            "id": self.id,
            "kind": self.kind,
            "service": self.service,
            "cluster": self.cluster,
            "state": self.state,
            "title": self.title,
            "openedAt": self.opened_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
            "resolvedAt": self.resolved_at.isoformat() if self.resolved_at else None,
            "timeline": [e.to_json() for e in self.timeline],
        }
