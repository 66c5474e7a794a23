"""SLO arithmetic (pure): error budgets and multi-window, multi-burn-rate alerts.

Following the Google SRE workbook ("Alerting on SLOs"): with an availability target T the error
budget is the share 1 - T of requests; the burn rate of a window is its error rate over 1 - T (1 spends
the budget exactly over the SLO window). An alert fires when both its long and its short window burn
at least its factor:

    page    1 h and 5 min  at 14.4  (2 % of a 30-day budget spent in one hour)
    ticket  6 h and 30 min at 6     (5 % of a 30-day budget spent in six hours)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from polycloud.state.obs_records import SliMinute


@dataclass(frozen=True)
class Counts:
    """Requests and failed requests over some window."""

    requests: float = 0.0
    errors: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.requests + other.requests, self.errors + other.errors)

    @property
    def error_rate(self) -> float:
        """errors / requests; 0 without requests."""
        return self.errors / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class BurnRule:
    """One multi-window burn-rate alert."""

    name: str
    long_s: int
    short_s: int
    factor: float


RULES = (BurnRule("page", 3600, 300, 14.4), BurnRule("ticket", 21600, 1800, 6.0))
WINDOWS_S = (300, 1800, 3600, 21600)
"""The windows the rules read (5 min, 30 min, 1 h, 6 h)."""


def check_target(target: float) -> None:
    """Raise ValueError unless 0 < target < 1."""
    if not 0 < target < 1:
        raise ValueError(f"an availability target must be between 0 and 1 (exclusive), not {target}")


def burn_rate(counts: Counts, target: float) -> float:
    """How fast the window spends the error budget: error rate / (1 - target)."""
    check_target(target)
    return counts.error_rate / (1.0 - target)


def budget_spent(burn: float, hours: float, slo_window_days: float) -> float:
    """Share of the whole SLO window's budget spent by burning at `burn` for `hours`."""
    return burn * hours / (slo_window_days * 24.0)


def budget_left(counts: Counts, target: float) -> float:
    """Share of the error budget left over the SLO window (negative once overspent; 1 without traffic)."""
    check_target(target)
    if counts.requests <= 0:
        return 1.0
    return 1.0 - counts.errors / ((1.0 - target) * counts.requests)


def firing(windows: dict[int, Counts], target: float) -> list[BurnRule]:
    """The rules whose long and short windows both burn at least their factor."""
    fired = []
    for rule in RULES:
        long, short = windows.get(rule.long_s, Counts()), windows.get(rule.short_s, Counts())
        if burn_rate(long, target) >= rule.factor and burn_rate(short, target) >= rule.factor:
            fired.append(rule)
    return fired


def window_counts(rows: list[SliMinute], now: datetime, seconds: float) -> Counts:
    """Requests and errors of the minutes that end after `now - seconds` (the current one included)."""
    since = now - timedelta(seconds=seconds)
    total = Counts()
    for r in rows:
        if r.minute + timedelta(minutes=1) > since:
            total += Counts(r.requests, r.errors)
    return total


def latency_compliance(rows: list[SliMinute], objective_ms: float) -> float:
    """Share of requests served in minutes whose p99 met `objective_ms` (1 without traffic)."""
    total = sum(r.requests for r in rows)
    if total <= 0:
        return 1.0
    return sum(r.requests for r in rows if r.p99_ms <= objective_ms) / total


def worst_p99(rows: list[SliMinute]) -> float:
    """The highest minute p99 among minutes with requests (0 without)."""
    return max((r.p99_ms for r in rows if r.requests > 0), default=0.0)
