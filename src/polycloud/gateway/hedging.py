"""Hedged requests: a second copy goes to another replica when the first is slower than usual.

A service that opts in (`spec.hedging.afterPercentile`, say 95) has each attempt raced: when no answer
has come after the service's recent p95 of successful attempt times, the same request goes to the next
replica the selector picks, and the first good answer wins (the other is cancelled). By construction
about one request in twenty is hedged, so the extra load is bounded (about 5 % at p95) while the
slowest 5 % — a replica stalled by GC, a noisy neighbour, a cloud's brown-out — stop setting the tail.
Before `MIN_SAMPLES` answers have been seen there is no percentile to trust, and nothing is hedged.
"""

from __future__ import annotations

import math
from collections import deque

MIN_SAMPLES = 100
"""Successful attempts to see before hedging (a percentile of fewer is noise)."""
WINDOW = 1024
"""Recent attempt times kept per service."""
REFRESH_EVERY = 64
"""New samples after which the percentile is computed again (sorting on every request would cost)."""
MIN_DELAY_S = 0.001


class LatencyWindow:
    """Recent successful attempt times of one service and a cached percentile of them."""

    __slots__ = ("_cached", "_fresh", "_samples")

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._cached: dict[float, float] = {}
        self._fresh = 0

    def add(self, elapsed_s: float) -> None:
        self._samples.append(elapsed_s)
        self._fresh += 1

    def percentile(self, q: float) -> float | None:
        """The `q`-th percentile (0 < q < 100) in seconds, None with too few samples."""
        if len(self._samples) < MIN_SAMPLES:
            return None
        if self._fresh >= REFRESH_EVERY or q not in self._cached:
            ordered = sorted(self._samples)
            self._cached = {q: ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]}
            self._fresh = 0
        return self._cached[q]


class Hedger:
    """Per-service latency windows and the hedge delay they give; event loop only."""

    def __init__(self) -> None:
        self._windows: dict[str, LatencyWindow] = {}

    def observe(self, service: str, elapsed_s: float) -> None:
        """Record one successful attempt's time."""
        window = self._windows.get(service)
        if window is None:
            window = self._windows[service] = LatencyWindow()
        window.add(elapsed_s)

    def delay_s(self, service: str, percentile: float) -> float | None:
        """How long to wait for the first attempt before hedging; None: do not hedge (yet)."""
        window = self._windows.get(service)
        found = window.percentile(percentile) if window is not None else None
        return None if found is None else max(found, MIN_DELAY_S)
