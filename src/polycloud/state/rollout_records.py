"""Records of canary rollouts and of the per-revision request counts that judge them.

A `RolloutRecord` is one canary: a Service's new revision (`canary`) taking a growing share of traffic
from the revision that served before it (`baseline`), step by step. `RevisionCounts` are one gateway's
cumulative attempt counts for one (service, revision) since that gateway started: attempts, failed
attempts (5xx, refused connections, timeouts) and a latency histogram over `LATENCY_BOUNDS_MS`. The
controller judges a step on the difference between two readings, so a report lost now and then costs
nothing.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

RolloutState = Literal["progressing", "paused", "succeeded", "rolled-back", "aborted", "superseded"]
ROLLOUT_STATES: tuple[RolloutState, ...] = get_args(RolloutState)
ACTIVE_ROLLOUT_STATES: tuple[RolloutState, ...] = ("progressing", "paused")

LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(0.25 * 1.25**k, 3) for k in range(56))
"""Upper bounds of the latency histogram's buckets (0.25 ms … about 60 s, 25 % apart); a last
bucket past the end holds everything slower. 25 % steps keep a p99 read from it within 25 %."""


def bucket_of(elapsed_ms: float) -> int:
    """The histogram bucket of one answer time."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, elapsed_ms)


def empty_buckets() -> list[int]:
    return [0] * (len(LATENCY_BOUNDS_MS) + 1)


def quantile_ms(buckets: list[int] | tuple[int, ...], q: float) -> float:
    """The `q`-quantile of a histogram: the upper bound of the bucket holding it (0 when empty)."""
    total = sum(buckets)
    if total <= 0:
        return 0.0
    rank = math.ceil(q * total)
    running = 0
    for index, count in enumerate(buckets):
        running += count
        if running >= rank:
            return LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]
    return LATENCY_BOUNDS_MS[-1]


@dataclass(frozen=True)
class RevisionCounts:
    """One gateway's cumulative attempts on one (service, revision) since it started."""

    service: str
    revision: int
    attempts: int
    failures: int
    buckets: tuple[int, ...]
    """Attempts per latency bucket (`LATENCY_BOUNDS_MS` plus one overflow bucket)."""
    gateway_id: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RolloutRecord:
    """One canary rollout of a Service, as the controller last recorded it."""

    id: int
    service: str
    baseline: int
    """The revision serving before the canary, restored on rollback."""
    canary: int
    """The new revision under test."""
    state: RolloutState
    steps: tuple[int, ...]
    """Traffic percentages, ending at 100."""
    step: int
    """Index into `steps` of the step under way."""
    step_started_at: datetime | None
    """When the current step's bake began (its canary replicas all ready); None while waiting."""
    window: dict[str, Any] = field(default_factory=dict)
    """Counts per gateway and revision when the bake began, to judge the step on what came after."""
    figures: dict[str, Any] = field(default_factory=dict)
    """The latest judgement: canary and baseline attempts, error rate and p99 over the step."""
    message: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_ROLLOUT_STATES

    @property
    def weight(self) -> int:
        """The canary's share of traffic now, in percent (0 once the rollout is over and rolled back)."""
        if self.state in ("rolled-back", "aborted", "superseded"):
            return 0
        if self.state == "succeeded":
            return 100
        return self.steps[self.step]

    def to_json(self) -> dict[str, Any]:
        """The rollout as the API and `polycloud rollout status --json` show it."""
        return {
            "service": self.service,
            "state": self.state,
            "baselineRevision": f"r{self.baseline}",
            "canaryRevision": f"r{self.canary}",
            "steps": list(self.steps),
            "step": self.step + 1,
            "weight": self.weight,
            "stepStartedAt": self.step_started_at.isoformat() if self.step_started_at else None,
            "figures": self.figures,
            "message": self.message,
            "createdAt": self.created_at.isoformat() if self.created_at else None,
            "updatedAt": self.updated_at.isoformat() if self.updated_at else None,
        }
