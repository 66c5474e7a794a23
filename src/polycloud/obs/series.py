"""From load reports to per-minute SLI rows and to short detection ticks (no I/O here).

Each gateway reports, every second, its answers per second, 5xx share and p99 per (service, cluster)
over its last one-second window. The observer reads the fresh reports every `dt` seconds and adds
`rps × dt` requests (and `rps × error_rate × dt` errors) to the current minute: an estimate that is
exact when it reads once per report window, and unbiased when it reads less often.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from polycloud.exchange import KeyLoad, LoadReport
from polycloud.state.obs_records import SliMinute, SliSource

Key = tuple[str, str]
"""(service, cluster)."""


@dataclass
class Tally:
    """Requests, errors and the request-weighted sum of p99s over some span."""

    requests: float = 0.0
    errors: float = 0.0
    weighted_p99: float = 0.0

    def add(self, requests: float, errors: float, p99_ms: float) -> None:
        self.requests += requests
        self.errors += errors
        self.weighted_p99 += p99_ms * requests

    @property
    def p99_ms(self) -> float:
        return self.weighted_p99 / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class TickValues:
    """One (service, cluster) over one detection tick."""

    rps: float
    error_rate: float
    p99_ms: float


def minute_of(now: datetime) -> datetime:
    """The start of `now`'s minute."""
    return now.replace(second=0, microsecond=0)


def per_cluster(reports: list[LoadReport]) -> dict[Key, tuple[float, float, float]]:
    """(rps, errors per second, p99) per (service, cluster), summed over gateways (p99: the worst)."""
    merged: dict[Key, tuple[float, float, float]] = {}
    for r in reports:
        rps, eps, p99 = merged.get((r.service, r.cluster), (0.0, 0.0, 0.0))
        merged[(r.service, r.cluster)] = (rps + r.rps, eps + r.rps * r.error_rate, max(p99, r.p99_ms))
    return merged


class MinuteSeries:
    """Per-minute tallies of traffic (from load reports) and probes, and the current detection tick."""

    def __init__(self) -> None:
        """Start empty."""
        self._minutes: dict[tuple[str, str, SliSource, datetime], Tally] = {}
        self._tick: dict[Key, Tally] = {}
        self._tick_s = 0.0

    def add_load(self, reports: list[LoadReport], now: datetime, dt: float) -> None:
        """Add `dt` seconds of the traffic `reports` describe."""
        minute = minute_of(now)
        self._tick_s += dt
        for (service, cluster), (rps, eps, p99) in per_cluster(reports).items():
            self._tally((service, cluster, "traffic", minute)).add(rps * dt, eps * dt, p99)
            self._tick.setdefault((service, cluster), Tally()).add(rps * dt, eps * dt, p99)

    def add_probe(self, service: str, cluster: str, ok: bool, ms: float, now: datetime) -> None:
        """Add one probe's outcome."""
        self._tally((service, cluster, "probe", minute_of(now))).add(1.0, 0.0 if ok else 1.0, ms)

    def _tally(self, key: tuple[str, str, SliSource, datetime]) -> Tally:
        tally = self._minutes.get(key)
        if tally is None:
            tally = self._minutes[key] = Tally()
        return tally

    def close_tick(self) -> dict[Key, TickValues]:
        """The tick's rate, error rate and p99 per (service, cluster); a new tick begins."""
        seconds, tick = self._tick_s, self._tick
        self._tick, self._tick_s = {}, 0.0
        if seconds <= 0:
            return {}
        return {
            key: TickValues(t.requests / seconds, t.errors / t.requests if t.requests else 0.0, t.p99_ms)
            for key, t in tick.items()
        }

    def flush(self, now: datetime) -> list[SliMinute]:
        """Rows of every minute held; minutes before `now`'s are final and forgotten afterwards."""
        current = minute_of(now)
        rows = [
            SliMinute(service, cluster, source, minute, t.requests, min(t.errors, t.requests), t.p99_ms)
            for (service, cluster, source, minute), t in sorted(self._minutes.items())
        ]
        self._minutes = {key: t for key, t in self._minutes.items() if key[3] >= current}
        return rows


class KeyTicks:
    """Per inference key (summed over gateways and clusters), the current detection tick."""

    def __init__(self, forget_after: int = 720) -> None:
        """Start empty; a key silent for `forget_after` ticks (an hour of 5 s ticks) is forgotten."""
        self._tick: dict[int, Tally] = {}
        self._services: dict[int, str] = {}
        self._silent: dict[int, int] = {}
        self._forget_after = forget_after
        self._tick_s = 0.0

    def add(self, loads: list[KeyLoad], dt: float) -> None:
        """Add `dt` seconds of the traffic `loads` describe (p99: the worst gateway's)."""
        self._tick_s += dt
        merged: dict[int, tuple[float, float, float]] = {}
        for r in loads:
            rps, eps, p99 = merged.get(r.key_id, (0.0, 0.0, 0.0))
            merged[r.key_id] = (rps + r.rps, eps + r.rps * r.error_rate, max(p99, r.p99_ms))
            self._services[r.key_id] = r.service
        for key_id, (rps, eps, p99) in merged.items():
            self._tick.setdefault(key_id, Tally()).add(rps * dt, eps * dt, p99)

    def close(self) -> dict[tuple[str, int], TickValues]:
        """The tick's values per (service, key id); a new tick begins. A key seen before but silent in
        this tick reads 0 requests/s, so that traffic stopping is scored too."""
        seconds, tick = self._tick_s, self._tick
        self._tick, self._tick_s = {}, 0.0
        if seconds <= 0:
            return {}
        values = {}
        for key_id in list(self._services):
            self._silent[key_id] = 0 if key_id in tick else self._silent.get(key_id, 0) + 1
            if self._silent[key_id] > self._forget_after:
                del self._services[key_id], self._silent[key_id]
                continue
            service, t = self._services[key_id], tick.get(key_id) or Tally()
            error_rate = t.errors / t.requests if t.requests else 0.0
            values[(service, key_id)] = TickValues(t.requests / seconds, error_rate, t.p99_ms)
        return values
