"""`polycloud slo --json`: each service's objectives against its SLIs, per cluster and overall.

    {"generatedAt": "...", "services": [
       {"service": "fraud", "declared": true,
        "objective": {"availability": 0.999, "p99Ms": 250, "windowDays": 30},
        "overall": SCOPE, "clusters": [{"cluster": "aws-use1", ...SCOPE}]}],
     "alerts": [{"service": "fraud", "cluster": null, "severity": "page", "burnRates": {...}}]}

    SCOPE = {"requests", "errors", "availability", "budgetLeft",
             "burnRates": {"5m", "30m", "1h", "6h"}, "alerts": ["page" | "ticket"],
             "p99Ms" (worst minute of the last hour), "latencyCompliance",
             "probe": {"runs", "failures", "availability"}}

Availability counts 5xx answers as failures; the SLO window's figures come from SQL sums over the
per-minute rows, the burn-rate windows (at most 6 h) from the rows themselves. A service without an
`slo` block is shown against the default objective (availability 0.999), with `declared: false`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from polycloud.obs import slo
from polycloud.spec.models import Slo
from polycloud.state.obs_records import SliMinute
from polycloud.state.repositories import WorkloadReader
from polycloud.state.repositories_runtime import SloReader

WINDOW_NAMES = {300: "5m", 1800: "30m", 3600: "1h", 21600: "6h"}
Totals = tuple[float, float, float]
"""(requests, errors, requests in minutes meeting the latency objective)."""


@dataclass(frozen=True)
class Objective:
    """A service's SLO."""

    service: str
    slo: Slo
    declared: bool


def objectives(store: WorkloadReader) -> list[Objective]:
    """The SLO of every current Service, by name."""
    found = []
    for w in store.current():
        if w.kind == "Service":
            raw = (w.spec.get("spec") or {}).get("slo")
            found.append(Objective(w.name, Slo.model_validate(raw or {}), raw is not None))
    return sorted(found, key=lambda o: o.service)


def _round(value: float) -> float:
    return round(value, 6)


def scope(
    rows: list[SliMinute], totals: Totals, probe: Totals, objective: Slo, now: datetime
) -> dict[str, Any]:
    """The SLO figures of one scope (a cluster, or the whole service)."""
    target = objective.availability
    counts = slo.Counts(totals[0], totals[1])
    windows = {s: slo.window_counts(rows, now, s) for s in slo.WINDOWS_S}
    hour = [r for r in rows if r.minute > now - timedelta(hours=1)]
    return {
        "requests": round(counts.requests, 1),
        "errors": round(counts.errors, 1),
        "availability": _round(1.0 - counts.error_rate),
        "budgetLeft": _round(slo.budget_left(counts, target)),
        "burnRates": {WINDOW_NAMES[s]: _round(slo.burn_rate(c, target)) for s, c in windows.items()},
        "alerts": [rule.name for rule in slo.firing(windows, target)],
        "p99Ms": round(slo.worst_p99(hour), 3),
        "latencyCompliance": _round(totals[2] / totals[0]) if totals[0] > 0 else 1.0,
        "probe": {
            "runs": int(probe[0]),
            "failures": int(probe[1]),
            "availability": _round(1.0 - probe[1] / probe[0]) if probe[0] else None,
        },
    }


def _sum(items: list[Totals]) -> Totals:
    return (sum(t[0] for t in items), sum(t[1] for t in items), sum(t[2] for t in items))


def _service(
    o: Objective, rows: list[SliMinute], totals: dict[tuple[str, str], Totals], now: datetime
) -> dict[str, Any]:
    traffic = [r for r in rows if r.source == "traffic"]
    clusters = sorted({c for c, _ in totals} | {r.cluster for r in rows})
    empty: Totals = (0.0, 0.0, 0.0)
    per_cluster = []
    for cluster in clusters:
        mine = [r for r in traffic if r.cluster == cluster]
        entry = scope(
            mine, totals.get((cluster, "traffic"), empty), totals.get((cluster, "probe"), empty), o.slo, now
        )
        per_cluster.append({"cluster": cluster, **entry})
    merged = _merge_minutes(traffic)
    overall = scope(
        merged,
        _sum([t for (_, source), t in totals.items() if source == "traffic"]),
        _sum([t for (_, source), t in totals.items() if source == "probe"]),
        o.slo,
        now,
    )
    objective = {"availability": o.slo.availability, "p99Ms": o.slo.p99Ms, "windowDays": o.slo.windowDays}
    return {
        "service": o.service,
        "declared": o.declared,
        "objective": objective,
        "overall": overall,
        "clusters": per_cluster,
    }


def _merge_minutes(rows: list[SliMinute]) -> list[SliMinute]:
    """One row per minute over clusters (p99: the worst cluster's)."""
    by_minute: dict[datetime, list[SliMinute]] = defaultdict(list)
    for r in rows:
        by_minute[r.minute].append(r)
    return [
        SliMinute(
            rows[0].service,
            "",
            "traffic",
            minute,
            sum(r.requests for r in group),
            sum(r.errors for r in group),
            max(r.p99_ms for r in group),
        )
        for minute, group in sorted(by_minute.items())
    ]


def slo_report(store: SloReader, now: datetime) -> dict[str, Any]:
    """Every service's SLO report (the JSON above)."""
    found = objectives(store)
    rows = store.sli_minutes(now - timedelta(seconds=max(slo.WINDOWS_S) + 60))
    p99 = {o.service: o.slo.p99Ms for o in found if o.slo.p99Ms is not None}
    totals: dict[str, dict[tuple[str, str], Totals]] = defaultdict(dict)
    for days in sorted({o.slo.windowDays for o in found}):
        for service, cluster, source, requests, errors, good in store.sli_totals(days * 86400.0, p99):
            if any(o.service == service and o.slo.windowDays == days for o in found):
                totals[service][(cluster, source)] = (requests, errors, good)
    services = [
        _service(o, [r for r in rows if r.service == o.service], totals[o.service], now) for o in found
    ]
    alerts = [
        {
            "service": s["service"],
            "cluster": c.get("cluster"),
            "severity": severity,
            "burnRates": c["burnRates"],
        }
        for s in services
        for c in [s["overall"], *s["clusters"]]
        for severity in c["alerts"]
    ]
    return {"generatedAt": now.isoformat(), "services": services, "alerts": alerts}
