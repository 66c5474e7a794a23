"""Burn-rate arithmetic against the worked examples of the Google SRE workbook ("Alerting on SLOs")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polycloud.obs import slo
from polycloud.obs.slo import Counts
from polycloud.state.obs_records import SliMinute

NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("burn", "hours", "spent"),
    [
        (14.4, 1, 0.02),  # the page: 2 % of a 30-day budget in one hour
        (6.0, 6, 0.05),  # the ticket: 5 % in six hours
        (1.0, 72, 0.10),  # burning at 1 for three days spends 10 %
        (1000.0, 43.2 / 60, 1.0),  # a 100 % outage on a 99.9 % SLO spends the whole budget in 43.2 min
    ],
)
def test_budget_spent_matches_the_workbook_table(burn: float, hours: float, spent: float) -> None:
    assert slo.budget_spent(burn, hours, 30) == pytest.approx(spent)


def test_burn_rate_is_the_error_rate_over_the_allowed_error_rate() -> None:
    assert slo.burn_rate(Counts(10_000, 144), 0.999) == pytest.approx(14.4)
    assert slo.burn_rate(Counts(1_000, 1000), 0.999) == pytest.approx(1000)
    assert slo.burn_rate(Counts(), 0.999) == 0


def test_budget_left_over_the_window() -> None:
    assert slo.budget_left(Counts(1_000_000, 400), 0.999) == pytest.approx(0.6)
    assert slo.budget_left(Counts(1_000_000, 2000), 0.999) == pytest.approx(-1.0)
    assert slo.budget_left(Counts(), 0.99) == 1.0


def test_an_alert_needs_both_its_windows_burning() -> None:
    fast = {3600: Counts(1000, 15), 300: Counts(100, 2), 21600: Counts(6000, 15), 1800: Counts(600, 2)}
    assert [r.name for r in slo.firing(fast, 0.999)] == ["page"]
    over = {**fast, 300: Counts(100, 0)}  # the burst ended: the short window resets the page
    assert slo.firing(over, 0.999) == []
    slow = {
        21600: Counts(100_000, 700),
        1800: Counts(10_000, 70),
        3600: Counts(20_000, 140),
        300: Counts(1, 0),
    }
    assert [r.name for r in slo.firing(slow, 0.999)] == ["ticket"]


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        slo.burn_rate(Counts(1, 1), 1.0)


def _minute(ago: int, requests: float, errors: float, p99: float = 10.0) -> SliMinute:
    start = NOW.replace(second=0) - timedelta(minutes=ago)
    return SliMinute("s", "c", "traffic", start, requests, errors, p99)


def test_windows_count_the_minutes_that_overlap_them() -> None:
    rows = [_minute(0, 10, 1), _minute(4, 10, 2), _minute(5, 10, 3), _minute(59, 10, 4), _minute(60, 10, 5)]
    assert slo.window_counts(rows, NOW, 300) == Counts(30, 6)  # minutes 0, 4 and 5 (which ends 4.5 min ago)
    assert slo.window_counts(rows, NOW, 3600) == Counts(50, 15)


def test_latency_compliance_and_worst_p99() -> None:
    rows = [_minute(0, 90, 0, 100.0), _minute(1, 10, 0, 400.0), _minute(2, 0, 0, 900.0)]
    assert slo.latency_compliance(rows, 250.0) == pytest.approx(0.9)
    assert slo.worst_p99(rows) == 400.0
