"""Cost showback (pure): pricing of observed usage, aggregation, budgets and the savings advisor.

Nothing here touches the database, the network or processes (an import-linter contract): the accountant
(`polycloud.controller.accounting`) and the cost service (`polycloud.services.costing`) feed it plain
values and store or show what it returns. Prices follow DESIGN.md §4 exactly.
"""

from polycloud.cost.budgets import THRESHOLDS, BudgetStatus, budget_statuses, forecast_usd
from polycloud.cost.pricing import HOURS_PER_MONTH, PriceBook, compute_usd, prorated_gb
from polycloud.cost.report import (
    CostLine,
    CostRow,
    TokenLine,
    chargeback,
    group,
    parse_since,
    report,
    token_report,
)

__all__ = [
    "HOURS_PER_MONTH",
    "THRESHOLDS",
    "BudgetStatus",
    "CostLine",
    "CostRow",
    "PriceBook",
    "TokenLine",
    "budget_statuses",
    "chargeback",
    "compute_usd",
    "forecast_usd",
    "group",
    "parse_since",
    "prorated_gb",
    "report",
    "token_report",
]
