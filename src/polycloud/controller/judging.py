"""Judging a canary step (pure): attempts, failures and latency of each revision since the step began.

The gateways report cumulative counts per (service, revision) since each started
(`polycloud.state.RevisionCounts`). A step's window is the difference between the counts now and the
snapshot taken when its bake began, per gateway (a gateway that restarted counts from zero again).

The canary fails a step when, over at least `MIN_ATTEMPTS` of its attempts,
- its error rate exceeds both the rollout's `maxErrorRate` and the baseline's error rate, or
- `maxP99Ms` is set and its p99 exceeds both `maxP99Ms` and the baseline's p99.
Relative to the baseline, so that a fault that hits both revisions (a cloud's brown-out) is not blamed
on the canary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polycloud.exchange import RevisionCounts, empty_buckets, quantile_ms
from polycloud.spec.models import Rollout

MIN_ATTEMPTS = 20
"""Fewer canary attempts than this are too few to blame the canary for anything."""

Snapshot = dict[str, dict[str, dict[str, Any]]]
"""gateway id → "r<revision>" → {"a": attempts, "f": failures, "b": buckets}: JSON for the store."""


@dataclass
class Window:
    """One revision's attempts over a step."""

    attempts: int = 0
    failures: int = 0
    buckets: list[int] = field(default_factory=empty_buckets)

    @property
    def error_rate(self) -> float:
        return self.failures / self.attempts if self.attempts else 0.0

    @property
    def p99_ms(self) -> float:
        return quantile_ms(self.buckets, 0.99)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "errorRate": round(self.error_rate, 6),
            "p99Ms": self.p99_ms,
        }


def snapshot(counts: list[RevisionCounts]) -> Snapshot:
    """The counts as a step's starting point."""
    taken: Snapshot = {}
    for c in counts:
        taken.setdefault(c.gateway_id, {})[f"r{c.revision}"] = {
            "a": c.attempts,
            "f": c.failures,
            "b": list(c.buckets),
        }
    return taken


def windows(counts: list[RevisionCounts], start: Snapshot) -> dict[int, Window]:
    """Per revision, what happened since `start`."""
    result: dict[int, Window] = {}
    for c in counts:
        before = start.get(c.gateway_id, {}).get(f"r{c.revision}")
        if before is not None and int(before["a"]) > c.attempts:
            before = None  # this gateway restarted: its counts began again at zero
        window = result.setdefault(c.revision, Window())
        base_a, base_f = (int(before["a"]), int(before["f"])) if before else (0, 0)
        base_b = [int(b) for b in before["b"]] if before else [0] * len(c.buckets)
        window.attempts += c.attempts - base_a
        window.failures += c.failures - base_f
        for i, (now, then) in enumerate(zip(c.buckets, base_b, strict=False)):
            window.buckets[i] += max(0, now - then)
    return result


def judge(canary: Window, baseline: Window, rules: Rollout) -> str | None:
    """Why the canary fails this step, or None while it holds up (or has seen too little to say)."""
    if canary.attempts < MIN_ATTEMPTS:
        return None
    rate, base_rate = canary.error_rate, baseline.error_rate
    if rate > rules.maxErrorRate and rate > base_rate:
        return (
            f"canary error rate {rate:.1%} over {canary.attempts} attempts exceeds maxErrorRate "
            f"{rules.maxErrorRate:.1%} (baseline {base_rate:.1%})"
        )
    if rules.maxP99Ms is not None:
        p99 = canary.p99_ms
        base_p99 = baseline.p99_ms if baseline.attempts >= MIN_ATTEMPTS else 0.0
        if p99 > rules.maxP99Ms and p99 > base_p99:
            return (
                f"canary p99 {p99:.0f} ms exceeds maxP99Ms {rules.maxP99Ms:g} ms (baseline {base_p99:.0f} ms)"
            )
    return None
