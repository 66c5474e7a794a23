"""Budgets: month-to-date spend per label value, % used, alert thresholds and the month-end forecast."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from polycloud.cost import CostLine, budget_statuses, forecast_usd
from polycloud.cost.budgets import crossed, elapsed_fraction, month_start, next_month
from polycloud.spec.models import Policy

MID_NOVEMBER = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
"""15 of November's 30 days have passed: half the month."""


def policy(name: str, budgets: list[dict[str, Any]], selector: dict[str, str] | None = None) -> Policy:
    spec: dict[str, Any] = {"budgets": budgets}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return Policy.model_validate(
        {"apiVersion": "polycloud/v1", "kind": "Policy", "metadata": {"name": name}, "spec": spec}
    )


def spent(usd: float, **labels: str) -> CostLine:
    return CostLine("w", "Service", "c", "p", "compute", usd, labels=labels)


def test_the_elapsed_fraction_and_forecast_of_a_month() -> None:
    assert elapsed_fraction(MID_NOVEMBER) == pytest.approx(0.5)
    assert forecast_usd(100.0, MID_NOVEMBER) == pytest.approx(200.0)
    assert elapsed_fraction(datetime(2026, 2, 8, tzinfo=UTC)) == pytest.approx(7 / 28)
    december = datetime(2026, 12, 31, 12, tzinfo=UTC)
    assert month_start(december) == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month(december) == datetime(2027, 1, 1, tzinfo=UTC)


def test_thresholds_are_50_80_and_100_percent() -> None:
    assert crossed(49.99) == []
    assert crossed(50) == [50]
    assert crossed(79.9) == [50]
    assert crossed(80) == [50, 80]
    assert crossed(250) == [50, 80, 100]


def test_a_budget_counts_its_label_value_within_the_policys_selector() -> None:
    policies = [
        policy("limits", [{"label": "team", "value": "risk", "maxMonthlyUSD": 200}]),
        policy("prod", [{"label": "team", "value": "risk", "maxMonthlyUSD": 100}], selector={"env": "prod"}),
    ]
    lines = [
        spent(90.0, team="risk", env="prod"),
        spent(30.0, team="risk", env="dev"),
        spent(500.0, team="ops", env="prod"),
    ]
    limits, prod = budget_statuses(policies, lines, MID_NOVEMBER)
    assert (limits.spendUSD, limits.percentUsed, limits.alert) == (120.0, 60.0, 50)
    assert limits.forecastUSD == pytest.approx(240.0)
    assert (prod.spendUSD, prod.percentUsed, prod.alert) == (90.0, 90.0, 80)
    assert prod.month == "2026-11" and prod.to_json()["forecastUSD"] == pytest.approx(180.0)


def test_no_spend_is_no_alert_and_a_zero_budget_is_spent_by_any_cost() -> None:
    zero = policy("freeze", [{"label": "team", "value": "risk", "maxMonthlyUSD": 0}])
    [idle] = budget_statuses([zero], [], MID_NOVEMBER)
    assert (idle.percentUsed, idle.alert) == (0.0, None)
    [busy] = budget_statuses([zero], [spent(0.01, team="risk")], MID_NOVEMBER)
    assert busy.alert == 100
