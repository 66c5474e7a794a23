"""Budgets per label value (Policy `spec.budgets`): month-to-date spend, % used, alerts, forecast.

A budget `{label, value, maxMonthlyUSD}` of a Policy covers the cost of workloads labelled `label: value`
(and selected by the policy's `selector`, when it has one) in the current calendar month (UTC). Alerts
fire at 50, 80 and 100 % of the limit, each once per month. The month-end forecast assumes the rest of
the month spends at the same rate: spend so far / elapsed fraction of the month.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from polycloud.cost.report import CostLine, money
from polycloud.spec.models import Budget, Policy

THRESHOLDS = (50, 80, 100)
"""Alert levels, in % of a budget's limit."""


def month_start(now: datetime) -> datetime:
    """Midnight UTC of the first day of `now`'s month."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    """Midnight UTC of the first day of the next month."""
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def month_key(now: datetime) -> str:
    """ "YYYY-MM"."""
    return f"{now.year:04d}-{now.month:02d}"


def elapsed_fraction(now: datetime) -> float:
    """How much of `now`'s month has passed, in (0, 1]."""
    start, end = month_start(now), next_month(now)
    return max((now - start) / (end - start), 1e-9)


def forecast_usd(spend_usd: float, now: datetime) -> float:
    """Month-end spend if the rest of the month spends like the part so far."""
    return spend_usd / elapsed_fraction(now)


def crossed(percent: float) -> list[int]:
    """The thresholds at or below `percent`."""
    return [t for t in THRESHOLDS if percent >= t]


@dataclass(frozen=True)
class BudgetStatus:
    """One budget this month."""

    policy: str
    label: str
    value: str
    month: str
    limitUSD: float
    spendUSD: float
    forecastUSD: float
    percentUsed: float
    alert: int | None
    """The highest threshold crossed (50, 80, 100), or None."""

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "label": self.label,
            "value": self.value,
            "month": self.month,
            "limitUSD": self.limitUSD,
            "spendUSD": self.spendUSD,
            "forecastUSD": self.forecastUSD,
            "percentUsed": self.percentUsed,
            "alert": self.alert,
        }


def covers(policy: Policy, budget: Budget, labels: dict[str, str]) -> bool:
    """Whether a workload with `labels` counts against `budget` of `policy`."""
    selector = policy.spec.selector
    wanted = dict(selector.matchLabels) if selector is not None else {}
    wanted[budget.label] = budget.value
    return all(labels.get(k) == v for k, v in wanted.items())


def budget_statuses(
    policies: Sequence[Policy], month_lines: Iterable[CostLine], now: datetime
) -> list[BudgetStatus]:
    """Every budget of `policies`, against the lines accrued this month so far."""
    lines = list(month_lines)
    statuses = []
    for policy in sorted(policies, key=lambda p: p.metadata.name):
        for budget in policy.spec.budgets:
            spend = sum(line.usd for line in lines if covers(policy, budget, line.labels))
            limit = budget.maxMonthlyUSD
            percent = 100.0 * spend / limit if limit > 0 else (100.0 if spend > 0 else 0.0)
            levels = crossed(percent)
            statuses.append(
                BudgetStatus(
                    policy=policy.metadata.name,
                    label=budget.label,
                    value=budget.value,
                    month=month_key(now),
                    limitUSD=limit,
                    spendUSD=money(spend),
                    forecastUSD=money(forecast_usd(spend, now)),
                    percentUsed=round(percent, 4),
                    alert=levels[-1] if levels else None,
                )
            )
    return statuses
