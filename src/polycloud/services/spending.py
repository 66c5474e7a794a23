"""Spend over time for the dashboard's cost chart: the ledger's hourly rows grouped like `/cost`'s `by`.

`/cost` answers "how much in the window"; this answers "how much each hour", with the same keys (a
service, cluster, provider or label value) so the chart and the table beside it agree. A project token
sees only its project's cost, as with `/cost`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from polycloud.controller.accounting import cost_line
from polycloud.cost import parse_since
from polycloud.cost.report import CostLine, check_by, key_of, money
from polycloud.state.repositories_services import SpendReader

HourLine = tuple[datetime, CostLine]
"""A cost line and the (UTC) hour it accrued in."""


def spend(
    store: SpendReader, by: str, since: str | None, project: str | None, now: datetime | None = None
) -> dict[str, Any]:
    """Spend per hour per key of `by` from `since` ("7d", "12h", an ISO date; None: all) to now.

    Raises:
        UserError: `by` is not a key lines can be grouped by, or `since` is not a window.
    """
    check_by(by)
    start = parse_since(since, now or datetime.now(UTC))
    hourly = [
        (line.first_hour, cost_line(line))
        for line in store.cost_hours(start)
        if project is None or line.tag.project == project
    ]
    return series(hourly, by)


def series(hourly: Iterable[HourLine], by: str) -> dict[str, Any]:
    """`{"by", "hours", "series", "egress", "totalUSD"}`: `hours` are the ascending ISO starts of the
    hours that have any line; `series[key][i]` is key's compute + egress USD in `hours[i]` and
    `egress[key][i]` its egress part. Keys run dearest first (ties by key), as `/cost`'s rows do."""
    total: dict[str, dict[datetime, float]] = {}
    egress: dict[str, dict[datetime, float]] = {}
    hours: set[datetime] = set()
    grand = 0.0
    for hour, line in hourly:
        key = key_of(line, by)
        hours.add(hour)
        grand += line.usd
        _add(total, key, hour, line.usd)
        _add(egress, key, hour, line.usd if line.category == "egress" else 0.0)
    axis = sorted(hours)
    keys = sorted(total, key=lambda k: (-money(sum(total[k].values())), k))
    return {
        "by": by,
        "hours": [h.isoformat() for h in axis],
        "series": {k: [money(total[k].get(h, 0.0)) for h in axis] for k in keys},
        "egress": {k: [money(egress[k].get(h, 0.0)) for h in axis] for k in keys},
        "totalUSD": money(grand),
    }


def _add(sums: dict[str, dict[datetime, float]], key: str, hour: datetime, usd: float) -> None:
    per_hour = sums.setdefault(key, {})
    per_hour[hour] = per_hour.get(hour, 0.0) + usd
