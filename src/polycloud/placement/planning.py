"""`plan_fleet`: from a validated fleet and the catalog to an exactly optimal, explained Plan."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from polycloud.catalog import Catalog
from polycloud.placement.choices import Choice, Problem, ProblemBuilder, QuotaKey
from polycloud.placement.explaining import explain, infeasible_reasons, quota_holders, unused_reasons
from polycloud.placement.plan import Assignment, Infeasible, Placement, Plan, cheapest_provider, money
from polycloud.placement.sites import Site, build_site
from polycloud.placement.solving import Result, Solution, solve
from polycloud.spec.fleet import Fleet


@dataclass(frozen=True)
class PlanOutcome:
    """The plan plus the solver's figures (for benchmarks and diagnostics)."""

    plan: Plan
    result: Result
    problems: list[Problem]


def plan_fleet(fleet: Fleet, catalog: Catalog, *, lower_bound: bool = False) -> Plan:
    """Place every workload of `fleet` at least total cost under DESIGN.md §4."""
    return plan_fleet_detailed(fleet, catalog, lower_bound=lower_bound).plan


def plan_fleet_detailed(fleet: Fleet, catalog: Catalog, *, lower_bound: bool = False) -> PlanOutcome:
    with collector_paused():
        return _plan(fleet, catalog, lower_bound)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while planning; it resumes (if it ran) afterwards.

    A large fleet's plan allocates about a million long-lived objects (the choices and their lists) in
    one go. None forms a reference cycle, so reference counting frees them as usual, but each burst of
    allocations would set off collections that walk all of them again and again: a third of the time at
    10,000 workloads × 100 clusters. Process-wide, like any use of `gc`: a plan running concurrently in
    another thread at worst resumes collection early, which costs time but not correctness.
    """
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def _plan(fleet: Fleet, catalog: Catalog, lower_bound: bool) -> PlanOutcome:
    sites = {name: build_site(cluster, catalog) for name, cluster in fleet.clusters.items()}
    builder = ProblemBuilder(fleet, sites, catalog)
    problems = [builder.build(w) for w in fleet.workloads()]
    result = solve(problems, quota_caps(sites), lower_bound=lower_bound)
    placements: list[Placement] = []
    infeasible: list[Infeasible] = []
    holding = quota_holders(result.solutions)
    for p in problems:
        solution = result.solutions.get(p.name)
        if solution is None:
            failure = result.failures.get(p.name, "no feasible placement")
            infeasible.append(Infeasible(p.name, p.kind, infeasible_reasons(p, failure)))
            continue
        why = explain(p, solution, unused_reasons(p, holding))
        placements.append(to_placement(p, solution, why))
    placed = {p.workload for p in placements}
    costs = naive_costs(problems, placed)
    baseline = cheapest_provider(costs, placed)
    plan = Plan(
        placements=placements,
        infeasible=infeasible,
        totalUSD=money(sum(p.totalUSD for p in placements)),
        baselineUSD=money(baseline[1]) if baseline else None,
        baselineProvider=baseline[0] if baseline else None,
        naiveUSD=costs,
    )
    return PlanOutcome(plan, result, problems)


def quota_caps(sites: dict[str, Site]) -> dict[QuotaKey, float]:
    return {(name, acc): float(cap) for name, site in sites.items() for acc, cap in site.quotas.items()}


def to_placement(p: Problem, solution: Solution, explanation: str) -> Placement:
    compute = sum((c.compute_usd for c in solution), 0.0)
    egress = sum((c.egress_usd for c in solution), 0.0)
    return Placement(
        workload=p.name,
        kind=p.kind,
        pattern=p.pattern,
        assignments=[_assignment(c) for c in solution],
        computeUSD=money(compute),
        egressUSD=money(egress),
        totalUSD=money(compute + egress),
        explanation=explanation,
    )


def _assignment(c: Choice) -> Assignment:
    return Assignment(
        cluster=c.cluster,
        role=c.role,
        replicas=0 if c.role == "burst" else (1 if c.role == "standby" else c.replicas),
        instanceType=c.offering.instance_type,
        hourlyUSD=c.hourly_usd,
        spot=c.spot,
        accelerator=c.offering.accelerator,
        acceleratorCount=c.offering.accelerator_count,
        costUSD=money(c.cost),
    )


def naive_baseline(problems: list[Problem], placed: set[str]) -> tuple[str, float] | None:
    """What the placed workloads would cost on the one provider that is cheapest for all of them.

    Naive means what a team without a planner does: pick one provider, put each workload on its cheapest
    compute there (data egress paid but ignored when choosing; quotas ignored), and put a pattern's
    second role on the cheapest compute it may use elsewhere.
    """
    return cheapest_provider(naive_costs(problems, placed), placed)


def naive_costs(problems: list[Problem], placed: set[str]) -> dict[str, dict[str, float]]:
    """Each placed workload's naive cost on every provider that could hold it alone (see above)."""
    tables = {id(p.providers): p.providers for p in problems}  # problems of one plan share one table
    providers = sorted({prov for table in tables.values() for prov in table.values()})
    costs: dict[str, dict[str, float]] = {}
    for p in problems:
        if p.name in placed:
            found = _naive_costs(p, providers)
            costs[p.name] = {prov: cost for prov, cost in found.items() if cost is not None}
    return costs


def _naive_costs(p: Problem, providers: list[str]) -> dict[str, float | None]:
    """`p`'s naive cost per provider, None where that provider cannot hold it.

    Each choice list is grouped by provider and sorted once (the cheapest by compute, then cluster name,
    is the first in that order that qualifies): a workload has about a hundred choices per role.
    """
    mine: dict[str, list[Choice]] = defaultdict(list)
    for c in p.choices["active"]:
        mine[p.providers[c.cluster]].append(c)
    partners = sorted(p.choices[p.roles[1]], key=_naive_order) if len(p.roles) > 1 else []
    found: dict[str, float | None] = {}
    for provider in providers:
        if provider not in mine:
            found[provider] = None
            continue
        primary = min(mine[provider], key=_naive_order)
        if len(p.roles) == 1:
            found[provider] = primary.cost
            continue
        other = next((c for c in partners if _naive_partner(p, primary, c, provider)), None)
        found[provider] = primary.cost + other.cost if other is not None else None
    return found


def _naive_order(c: Choice) -> tuple[float, str]:
    return (c.compute_usd, c.cluster)


def _naive_partner(p: Problem, primary: Choice, c: Choice, provider: str) -> bool:
    """Whether `c` may take the pattern's second role next to `primary` in the naive plan."""
    return c.cluster != primary.cluster and (p.pattern == "burst" or p.providers[c.cluster] != provider)
