"""How long an attempt may take before another replica is asked too: per-service latency windows.

Every successful attempt's time goes into its service's window (the last `WINDOW`). Two figures come
out of it, both read on the request path from a cached value:

- **the attempt limit**, `attempt_latency_factor` (2) × the window's p99, kept within
  [`attempt_floor_s`, `attempt_timeout_s`] (250 ms and 5 s by default). An attempt still unanswered
  at its limit is *overdue*: the proxy sends a copy to another replica (another cluster when there is
  one) and keeps the first running; the first good answer wins. This is what makes a replica that
  accepts connections and never answers — a frozen process, a network black hole, a hung driver —
  cost a client about one limit instead of a fixed 5 s timeout. Why these numbers:

  * p99, not the mean: the limit must sit above the service's own normal tail, or healthy requests
    would be hedged by the percent; two p99s leave room for a bad minute on a loaded machine;
  * the floor keeps fast models (a few ms) from hedging on scheduling noise (a GC pause, a busy
    core) and bounds what a frozen replica costs: about one floor per request caught on it;
  * the cap is the old fixed attempt timeout: no attempt waits longer alone;
  * a slow model is never cut off by it: its own answers set its p99 (2 s per inference gives a
    4 s limit), and a limit only ever launches a second copy, it does not abandon the first;
  * a service with no answers yet starts at the floor: its first requests may be hedged, which for
    a slow model only means two replicas work on them until the first answer teaches the window
    (the window follows a sample above its p99 at once, so a model that turns slow is learnt in a
    few answers rather than in a window's refresh).

- **the hedge delay** of a service that opts in with `spec.hedging.afterPercentile` (say 95): a copy
  leaves once no answer came within that percentile of recent attempt times (earlier than the limit,
  so about one request in twenty is hedged: the slowest 5 % — a stalled replica, a noisy neighbour —
  stop setting the tail). Before `MIN_SAMPLES` answers there is no percentile to trust, and only the
  limit applies.

Everything runs on the event loop: no locks. Recording a sample is an append and a comparison; the
window is sorted every `REFRESH_EVERY` samples, and when a sample could raise the limit.
"""

from __future__ import annotations

import math
from collections import deque

from polycloud.gateway.settings import GatewaySettings

MIN_SAMPLES = 100
"""Successful attempts to see before hedging at a percentile (a percentile of fewer is noise)."""
WINDOW = 1024
"""Recent attempt times kept per service."""
REFRESH_EVERY = 256
"""New samples after which the percentiles are computed again (sorting 1,024 floats takes ~50 µs: on
every request it would cost more than the rest of the request path). Sooner while the window is young
(after 1, 2, 4, ... samples), and at once when a sample could raise the limit (see `LatencyWindow`)."""
TRIGGER = 1.25
"""A sample this far above the p99 (and above limit / factor) refreshes the limit at once."""
MIN_DELAY_S = 0.001
LIMIT_PERCENTILE = 99.0
"""The percentile of recent attempt times that the attempt limit multiplies."""


def _rank(ordered: list[float], q: float) -> float:
    """The nearest-rank `q`-th percentile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class LatencyWindow:
    """Recent successful attempt times of one service, its cached attempt limit and hedge percentile.

    The limit follows a slower service at once: a sample above both `TRIGGER` × the p99 and the
    limit / factor (so one that could raise the limit) recomputes it, which for a fast service behind
    the floor is almost never. It follows a faster one at the next refresh.
    """

    __slots__ = ("_cached", "_every", "_factor", "_fresh", "_samples", "_span", "_trigger", "limit_s")

    def __init__(self, settings: GatewaySettings) -> None:
        """An empty window: its limit is the floor until the first answer."""
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._cached: dict[float, float] = {}
        self._fresh = 0
        self._every = 1
        """Fresh samples that refresh the figures: 1, 2, 4, ... up to `REFRESH_EVERY`."""
        self._trigger = math.inf
        """A sample above this refreshes at once."""
        self._factor = settings.attempt_latency_factor
        self._span = (settings.attempt_floor_s, settings.attempt_timeout_s)
        floor, cap = self._span
        self.limit_s = min(floor, cap)
        """How long an attempt of this service may go unanswered before it is overdue."""

    def add(self, elapsed_s: float) -> None:
        """Record one successful attempt's time (seconds)."""
        self._samples.append(elapsed_s)
        self._fresh += 1
        if elapsed_s > self._trigger or self._fresh >= self._every:
            self._refresh()

    def _refresh(self) -> None:
        samples = self._samples
        ordered = sorted(samples)
        high = _rank(ordered, LIMIT_PERCENTILE)
        self._cached = {q: _rank(ordered, q) for q in self._cached}
        self._fresh = 0
        self._every = min(REFRESH_EVERY, len(samples))
        floor, cap = self._span
        self.limit_s = limit = min(cap, max(floor, self._factor * high))
        self._trigger = max(TRIGGER * high, limit / self._factor)

    def percentile(self, q: float) -> float | None:
        """The `q`-th percentile (0 < q < 100) in seconds, None with fewer than `MIN_SAMPLES` samples."""
        if len(self._samples) < MIN_SAMPLES:
            return None
        found = self._cached.get(q)
        if found is None:
            found = self._cached[q] = _rank(sorted(self._samples), q)
        return found


class Hedger:
    """Per-service latency windows, and the attempt limits and hedge delays they give; event loop only."""

    def __init__(self, settings: GatewaySettings) -> None:
        """Empty windows; `settings` gives the limits' factor, floor and cap."""
        self._settings = settings
        self._windows: dict[str, LatencyWindow] = {}
        self._floor = min(settings.attempt_floor_s, settings.attempt_timeout_s)

    def observe(self, service: str, elapsed_s: float) -> None:
        """Record one successful attempt's time."""
        window = self._windows.get(service)
        if window is None:
            window = self._windows[service] = LatencyWindow(self._settings)
        window.add(elapsed_s)

    def limit_s(self, service: str) -> float:
        """How long an attempt of `service` may go unanswered before it is overdue (see the module)."""
        window = self._windows.get(service)
        return self._floor if window is None else window.limit_s

    def delay_s(self, service: str, percentile: float) -> float | None:
        """How long to wait for the first attempt before hedging at `percentile`; None: not yet."""
        window = self._windows.get(service)
        found = window.percentile(percentile) if window is not None else None
        return None if found is None else max(found, MIN_DELAY_S)
