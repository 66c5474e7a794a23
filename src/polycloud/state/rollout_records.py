"""Records of canary rollouts and of the per-revision request counts that judge them.

A `RolloutRecord` is one canary: a Service's new revision (`canary`) taking a growing share of traffic
from the revision that served before it (`baseline`), step by step. `RevisionCounts` are one gateway's
cumulative attempt counts for one (service, revision) since that gateway started: attempts, failed
attempts (5xx, refused connections, timeouts) and a latency histogram over `LATENCY_BOUNDS_MS`. The
controller judges a step on the difference between two readings, so a report lost now and then costs
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

RolloutState = Literal["progressing", "paused", "succeeded", "rolled-back", "aborted", "superseded"]
ROLLOUT_STATES: tuple[RolloutState, ...] = get_args(RolloutState)
ACTIVE_ROLLOUT_STATES: tuple[RolloutState, ...] = ("progressing", "paused")


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
