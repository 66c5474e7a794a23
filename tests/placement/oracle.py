"""A test oracle for the planner: DESIGN.md §4 re-implemented by brute force, and a plan checker.

Only the model's primitives are borrowed from `polycloud.placement.sites` (the offering of a cluster,
the hourly price paid, the transfer price, the RTT between two points, where a traffic source stands).
Everything the optimiser decides — which roles a pattern needs, which clusters each role may use, the
latency, residency, allow-list and quota rules, the cost sums and the search over every combination —
is written here again from the design text, without looking at the planner's data structures.

The search is exhaustive over "one option per workload, or unplaced": it maximises the number of
workloads placed, then minimises the total cost. A simple bound cuts branches that cannot beat the
best complete assignment found so far; it never cuts an optimum.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from polycloud.catalog import Catalog, Offering
from polycloud.placement.sites import (
    Point,
    Site,
    best_offering,
    build_site,
    hourly,
    rtt_ms,
    traffic_point,
    transfer_usd_per_gb,
)
from polycloud.spec import Fleet
from polycloud.spec.models import Job, Service

HOURS_PER_MONTH = 730.0
QuotaKey = tuple[str, str]


@dataclass(frozen=True)
class Part:
    """One role of one workload in one cluster, priced by the model."""

    role: str
    cluster: str
    offering: Offering
    replicas: int
    hourly_usd: float
    compute_usd: float
    egress_usd: float
    usage: tuple[QuotaKey, float] | None


@dataclass(frozen=True)
class Option:
    """A complete, individually feasible placement of one workload (quotas aside)."""

    workload: str
    parts: tuple[Part, ...]

    @property
    def compute_usd(self) -> float:
        return sum(p.compute_usd for p in self.parts)

    @property
    def egress_usd(self) -> float:
        return sum(p.egress_usd for p in self.parts)

    @property
    def cost(self) -> float:
        return self.compute_usd + self.egress_usd


@dataclass
class Optimum:
    """The brute-force answer: how many workloads can be placed and the least total cost of that."""

    placed: dict[str, Option] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)
    total: float = 0.0


class Oracle:
    """DESIGN.md §4 for one fleet: options per workload, the optimum, and a checker for plans."""

    def __init__(self, fleet: Fleet, catalog: Catalog) -> None:
        self.fleet = fleet
        self.catalog = catalog
        self.sites: dict[str, Site] = {name: build_site(c, catalog) for name, c in fleet.clusters.items()}
        self.caps: dict[QuotaKey, float] = {}
        for name, cluster in fleet.clusters.items():
            for accelerator, cap in cluster.spec.quotas.items():
                self.caps[(name, accelerator.lower())] = float(cap)
        self.workloads: dict[str, Service | Job] = {w.metadata.name: w for w in fleet.workloads()}

    # -- per cluster -------------------------------------------------------------------------------
    def offering(self, workload: Service | Job, cluster: str) -> Offering | None:
        """The workload's instance in `cluster`, or None when the cluster is ruled out for every role."""
        site = self.sites[cluster]
        spec = workload.spec
        rules = spec.placement
        if rules.clusters is not None and cluster not in rules.clusters:
            return None
        if rules.providers is not None and site.provider not in rules.providers:
            return None
        if rules.jurisdictions is not None and site.jurisdiction not in rules.jurisdictions:
            return None
        for policy in self.fleet.policies.values():
            p = policy.spec
            if p.providers is not None and site.provider not in p.providers:
                return None
            if p.regions is not None and f"{site.provider}/{site.region}" not in p.regions:
                return None
            if p.jurisdictions is not None and site.jurisdiction not in p.jurisdictions:
                return None
        for read in spec.reads:
            residency = self.fleet.datasets[read.dataset].spec.residency
            if residency is not None and site.jurisdiction != residency:
                return None
        spot = isinstance(workload, Job) and workload.spec.spot
        return best_offering(site, spec.resources, spot=spot)

    def part(self, workload: Service | Job, role: str, cluster: str, offering: Offering) -> Part:
        """Price one role in one cluster: compute, egress and the quota it holds."""
        site = self.sites[cluster]
        if isinstance(workload, Job):
            spec = workload.spec
            price = hourly(offering, spec.spot)
            compute = spec.nodes * spec.hours * price
            egress = sum(
                self.fleet.datasets[r.dataset].spec.sizeGB * self._transfer(r.dataset, site)
                for r in spec.reads
            )
            replicas, held = spec.nodes, float(spec.nodes)
        else:
            svc = workload.spec
            price = offering.hourly_usd
            if role == "active":
                compute = svc.replicas * price * HOURS_PER_MONTH
                egress = sum(r.gbPerMonth * self._transfer(r.dataset, site) for r in svc.reads)
                replicas, held = svc.replicas, float(svc.replicas)
            elif role == "standby":
                compute, egress, replicas, held = price * HOURS_PER_MONTH, 0.0, 1, 1.0
            else:
                compute = svc.replicas * price * svc.burstHoursPerMonth
                egress, replicas, held = 0.0, 0, 0.0
        usage = None
        if offering.accelerator is not None:
            key = (cluster, offering.accelerator.lower())
            if key in self.caps and held * offering.accelerator_count > 0:
                usage = (key, held * offering.accelerator_count)
        return Part(role, cluster, offering, replicas, price, compute, egress, usage)

    def _transfer(self, dataset: str, site: Site) -> float:
        return transfer_usd_per_gb(self.sites[self.fleet.datasets[dataset].spec.cluster], site)

    def _points(self, svc: Service) -> list[Point]:
        return [traffic_point(t, self.catalog, self.sites) for t in svc.spec.traffic]

    def latency_ok(self, svc: Service, active: list[str]) -> bool:
        """Every traffic source's nearest active cluster is within the budget."""
        if svc.spec.latency is None:
            return True
        budget = svc.spec.latency.maxRttMs
        for point in self._points(svc):
            nearest = min(rtt_ms(point, self.sites[c].point, self.catalog) for c in active)
            if nearest > budget:
                return False
        return True

    # -- per workload ------------------------------------------------------------------------------
    def layouts(self, workload: Service | Job) -> list[tuple[tuple[str, str], ...]]:
        """Every (role, cluster) layout the pattern allows, before eligibility and quotas."""
        names = sorted(self.sites)
        if isinstance(workload, Job) or workload.spec.pattern == "single":
            return [(("active", c),) for c in names]
        pattern = workload.spec.pattern
        if pattern == "active-active":
            return [(("active", a), ("active", b)) for a, b in itertools.combinations(names, 2)]
        second = "standby" if pattern == "active-passive" else "burst"
        return [(("active", a), (second, b)) for a in names for b in names if a != b]

    def violations(self, workload: Service | Job, layout: tuple[tuple[str, str], ...]) -> list[str]:
        """Why `layout` breaks the model for this workload on its own (quotas are fleet-wide: not here)."""
        name = workload.metadata.name
        found = []
        if isinstance(workload, Job):
            expected = ["active"]
            pattern = "single"
        else:
            pattern = workload.spec.pattern
            expected = {
                "single": ["active"],
                "active-active": ["active", "active"],
                "active-passive": ["active", "standby"],
                "burst": ["active", "burst"],
            }[pattern]
        if sorted(r for r, _ in layout) != sorted(expected):
            found.append(f"{name}: roles {[r for r, _ in layout]} do not fit pattern {pattern}")
            return found
        clusters = [c for _, c in layout]
        for cluster in clusters:
            if cluster not in self.sites:
                found.append(f"{name}: unknown cluster {cluster}")
            elif self.offering(workload, cluster) is None:
                found.append(f"{name}: {cluster} is not allowed or has no fitting offering")
        if found:
            return found
        providers = [self.sites[c].provider for c in clusters]
        if pattern in ("active-active", "active-passive") and providers[0] == providers[1]:
            found.append(f"{name}: {pattern} on one provider {providers[0]}")
        if pattern == "burst" and clusters[0] == clusters[1]:
            found.append(f"{name}: burst cluster equals the primary")
        if isinstance(workload, Service):
            active = [c for r, c in layout if r == "active"]
            if not self.latency_ok(workload, active):
                found.append(f"{name}: a traffic source is beyond maxRttMs of every active cluster")
        return found

    def price(self, workload: Service | Job, layout: tuple[tuple[str, str], ...]) -> Option:
        """The option for a layout that has no violations."""
        parts = []
        for role, cluster in layout:
            offering = self.offering(workload, cluster)
            if offering is None:  # callers check violations first
                raise ValueError(f"{cluster} cannot host {workload.metadata.name}")
            parts.append(self.part(workload, role, cluster, offering))
        return Option(workload.metadata.name, tuple(parts))

    def options(self, workload: Service | Job) -> list[Option]:
        """Every layout that meets the model on its own, priced; cheapest first."""
        found = [
            self.price(workload, lay) for lay in self.layouts(workload) if not self.violations(workload, lay)
        ]
        return sorted(found, key=lambda o: o.cost)

    # -- the whole fleet ---------------------------------------------------------------------------
    def optimum(self) -> Optimum:
        """Most workloads placed, then least cost: exhaustive search over options (or unplaced)."""
        names = sorted(self.workloads)
        menus = [self.options(self.workloads[n]) for n in names]
        cheapest = [m[0].cost if m else 0.0 for m in menus]
        best: dict[str, Any] = {"placed": -1, "cost": math.inf, "pick": None}
        usage: dict[QuotaKey, float] = defaultdict(float)
        pick: list[Option | None] = []

        def fits(option: Option) -> bool:
            return all(
                usage[p.usage[0]] + p.usage[1] <= self.caps[p.usage[0]] + 1e-9
                for p in option.parts
                if p.usage
            )

        def hold(option: Option, sign: float) -> None:
            for p in option.parts:
                if p.usage:
                    usage[p.usage[0]] += sign * p.usage[1]

        def search(i: int, placed: int, cost: float) -> None:
            remaining = len(names) - i
            if placed + remaining < best["placed"]:
                return
            if placed + remaining == best["placed"] and cost + sum(cheapest[i:]) >= best["cost"] - 1e-9:
                return
            if i == len(names):
                if placed > best["placed"] or cost < best["cost"]:
                    best.update(placed=placed, cost=cost, pick=list(pick))
                return
            for option in menus[i]:
                if fits(option):
                    hold(option, 1.0)
                    pick.append(option)
                    search(i + 1, placed + 1, cost + option.cost)
                    pick.pop()
                    hold(option, -1.0)
            pick.append(None)
            search(i + 1, placed, cost)
            pick.pop()

        search(0, 0, 0.0)
        result = Optimum()
        for name, option in zip(names, best["pick"], strict=True):
            if option is None:
                result.unplaced.append(name)
            else:
                result.placed[name] = option
        result.total = sum(o.cost for o in result.placed.values())
        return result

    # -- checking a plan ---------------------------------------------------------------------------
    def check(self, plan: dict[str, Any]) -> list[str]:
        """Every way the `plan --json` object breaks the model or misstates a cost (empty when sound)."""
        problems: list[str] = []
        seen: set[str] = set()
        usage: dict[QuotaKey, float] = defaultdict(float)
        total = 0.0
        for placement in plan["placements"]:
            name = placement["workload"]
            seen.add(name)
            workload = self.workloads.get(name)
            if workload is None:
                problems.append(f"unknown workload {name}")
                continue
            problems.extend(self._check_placement(workload, placement, usage))
            total += placement["totalUSD"]
        for item in plan["infeasible"]:
            if item["workload"] in seen:
                problems.append(f"{item['workload']} is both placed and infeasible")
            seen.add(item["workload"])
            if not item["reasons"] or not all(isinstance(r, str) and r for r in item["reasons"]):
                problems.append(f"{item['workload']} is infeasible without a reason")
        if seen != set(self.workloads):
            problems.append(f"workloads missing from the plan: {sorted(set(self.workloads) - seen)}")
        for key, used in usage.items():
            if used > self.caps[key] + 1e-9:
                problems.append(f"quota {key[1]} in {key[0]} exceeded: {used:g} > {self.caps[key]:g}")
        if not close(plan["totalUSD"], total):
            problems.append(f"plan totalUSD {plan['totalUSD']} is not the sum of placements {total}")
        return problems

    def _check_placement(
        self, workload: Service | Job, placement: dict[str, Any], usage: dict[QuotaKey, float]
    ) -> list[str]:
        name = workload.metadata.name
        layout = tuple((a["role"], a["cluster"]) for a in placement["assignments"])
        problems = self.violations(workload, layout)
        if problems:
            return problems
        option = self.price(workload, layout)
        expected_kind = "Job" if isinstance(workload, Job) else "Service"
        pattern = "single" if isinstance(workload, Job) else workload.spec.pattern
        if placement["kind"] != expected_kind or placement["pattern"] != pattern:
            problems.append(f"{name}: kind/pattern {placement['kind']}/{placement['pattern']}")
        for assignment, part in zip(placement["assignments"], option.parts, strict=True):
            if assignment["replicas"] != part.replicas:
                problems.append(f"{name}: {part.role} replicas {assignment['replicas']} != {part.replicas}")
            if not close(assignment["hourlyUSD"], part.hourly_usd):
                problems.append(
                    f"{name}: {part.cluster} hourly {assignment['hourlyUSD']} != {part.hourly_usd}"
                )
            if assignment["instanceType"] != part.offering.instance_type:
                problems.append(f"{name}: {part.cluster} instance {assignment['instanceType']}")
            if part.usage:
                usage[part.usage[0]] += part.usage[1]
        figures = (
            ("computeUSD", option.compute_usd),
            ("egressUSD", option.egress_usd),
            ("totalUSD", option.cost),
        )
        for key, value in figures:
            if not close(placement[key], value):
                problems.append(f"{name}: {key} {placement[key]} != model's {value}")
        if not close(placement["totalUSD"], placement["computeUSD"] + placement["egressUSD"]):
            problems.append(f"{name}: totalUSD is not computeUSD + egressUSD")
        return problems


def close(a: float, b: float) -> bool:
    """Equal to 1e-6 relative (and a millionth of a dollar absolute, for reported rounding)."""
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=2e-6)
