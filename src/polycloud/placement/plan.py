"""The Plan: where each workload goes, what it costs, and why (DESIGN.md §4 JSON contract)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def money(x: float) -> float:
    """Dollars as reported: rounded to a millionth, so sums stay exact to the cent."""
    return round(x, 6)


@dataclass(frozen=True)
class Assignment:
    cluster: str
    role: str
    replicas: int
    instanceType: str
    hourlyUSD: float
    spot: bool
    accelerator: str | None = None
    acceleratorCount: float = 0.0
    costUSD: float = 0.0
    """This assignment's share of the workload's cost (its compute plus its data egress)."""


@dataclass(frozen=True)
class Placement:
    workload: str
    kind: str
    pattern: str
    assignments: list[Assignment]
    computeUSD: float
    egressUSD: float
    totalUSD: float
    explanation: str


@dataclass(frozen=True)
class Infeasible:
    workload: str
    kind: str
    reasons: list[str]


@dataclass(frozen=True)
class Plan:
    """A whole fleet's placement. `baselineUSD` is the naive plan's cost for the same workloads."""

    placements: list[Placement] = field(default_factory=list)
    infeasible: list[Infeasible] = field(default_factory=list)
    totalUSD: float = 0.0
    baselineUSD: float | None = None
    baselineProvider: str | None = None
    naiveUSD: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    """Per placed workload, its naive cost on each provider that could hold it: the baseline of any
    subset of the fleet (a project's) is computed from it, never from other workloads' spend."""

    def to_json(self) -> dict[str, Any]:
        """The `plan --json` object."""
        return {
            "placements": [asdict(p) for p in self.placements],
            "infeasible": [asdict(i) for i in self.infeasible],
            "totalUSD": self.totalUSD,
            "baselineUSD": self.baselineUSD,
            "baselineProvider": self.baselineProvider,
        }

    def baseline_for(self, workloads: set[str]) -> tuple[str, float] | None:
        """(provider, naive USD) of the placed ones among `workloads` alone; None when none can share one."""
        found = cheapest_provider(self.naiveUSD, workloads & set(self.naiveUSD))
        return (found[0], money(found[1])) if found else None

    def placement(self, workload: str) -> Placement | None:
        return next((p for p in self.placements if p.workload == workload), None)


def cheapest_provider(costs: dict[str, dict[str, float]], workloads: set[str]) -> tuple[str, float] | None:
    """The one provider that holds all of `workloads` most cheaply, with their naive total there.

    `costs` is `Plan.naiveUSD`; ties go to the provider first in name order.
    """
    candidates = [set(costs.get(w, {})) for w in workloads]
    common = sorted(set.intersection(*candidates)) if candidates else []
    totals = {prov: sum(c[prov] for w, c in costs.items() if w in workloads) for prov in common}
    if not totals:
        return None
    best = min(totals, key=lambda k: totals[k])
    return best, totals[best]
