"""Anomaly detection (pure): an EWMA baseline with a MAD scale, and the population stability index.

`RobustDetector` scores each new value x as (x - ewma) / (1.4826 × MAD), the MAD taken over the last
`window` values; after `warmup` values, a score beyond `threshold` (in the watched direction) is an
anomaly. The EWMA learns from the value clipped to ±threshold scales, so a burst of outliers does not
drag the baseline along with it. `psi` compares two samples' distributions (0.1: moderate shift,
0.25: significant, by the usual rule of thumb).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MAD_TO_SIGMA = 1.4826
Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class Score:
    """One value against its baseline."""

    value: float
    baseline: float
    scale: float
    score: float
    anomalous: bool


def median(values: Sequence[float]) -> float:
    """The median (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def mad(values: Sequence[float]) -> float:
    """The median absolute deviation from the median."""
    centre = median(values)
    return median([abs(v - centre) for v in values])


class RobustDetector:
    """EWMA + MAD anomaly detector of one signal."""

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        window: int = 60,
        warmup: int = 12,
        threshold: float = 6.0,
        direction: Direction = "both",
        min_scale: float = 1e-9,
        relative_scale: float = 0.05,
    ) -> None:
        """A detector; `min_scale` and `relative_scale` × |baseline| floor the scale, so a perfectly
        flat signal does not turn every wiggle into an anomaly."""
        if not 0 < alpha <= 1 or window < 3 or warmup < 3 or threshold <= 0:
            raise ValueError("need 0 < alpha <= 1, window >= 3, warmup >= 3 and threshold > 0")
        self._alpha = alpha
        self._recent: deque[float] = deque(maxlen=window)
        self._warmup = warmup
        self._threshold = threshold
        self._direction = direction
        self._min_scale = min_scale
        self._relative = relative_scale
        self.ewma: float | None = None

    def update(self, value: float) -> Score:
        """Score `value`, then learn from it."""
        if not math.isfinite(value):
            raise ValueError(f"cannot score a non-finite value {value}")
        baseline = value if self.ewma is None else self.ewma
        scale = max(MAD_TO_SIGMA * mad(self._recent), self._min_scale, self._relative * abs(baseline))
        score = (value - baseline) / scale
        ready = len(self._recent) >= self._warmup
        over = {"up": score > self._threshold, "down": score < -self._threshold}
        anomalous = ready and (
            over["up"] or over["down"] if self._direction == "both" else over[self._direction]
        )
        limit = self._threshold * scale
        clipped = min(max(value, baseline - limit), baseline + limit) if ready else value
        self.ewma = clipped if self.ewma is None else self.ewma + self._alpha * (clipped - self.ewma)
        self._recent.append(clipped)
        return Score(value, baseline, scale, score, anomalous)


EPSILON = 1e-4
"""Share given to an empty bin, so that the logarithm stays finite."""


def _categorical(values: Sequence[float], limit: int = 20) -> list[float] | None:
    distinct = sorted(set(values))
    return distinct if len(distinct) <= limit else None


def bin_edges(reference: Sequence[float], bins: int = 10) -> list[float]:
    """Inner bin edges at the reference's quantiles (duplicates dropped)."""
    ordered = sorted(reference)
    edges = {ordered[min(len(ordered) - 1, math.floor(i * len(ordered) / bins))] for i in range(1, bins)}
    return sorted(edges)


def shares(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    """Share of `values` in each bin (len(edges) + 1 bins; a value equal to an edge goes right)."""
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect.bisect_right(edges, v)] += 1
    total = len(values)
    return [c / total for c in counts]


def psi(reference: Sequence[float], current: Sequence[float], bins: int = 10) -> float:
    """Population stability index of `current` against `reference`: Σ (c - r) · ln(c / r) over bins.

    Bins are the reference's deciles, or its distinct values when it has at most 20 (class labels);
    an empty bin counts as `EPSILON`.
    """
    if not reference or not current:
        raise ValueError("PSI needs values in both the reference and the current sample")
    categories = _categorical(reference)
    if categories is not None:
        edges = [(a + b) / 2.0 for a, b in itertools.pairwise(categories)]
    else:
        edges = bin_edges(reference, bins)
    expected, actual = shares(reference, edges), shares(current, edges)
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total
