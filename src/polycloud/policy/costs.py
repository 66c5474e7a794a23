"""Rules that need a plan: budgets per label value, the egress limit, and where the plan put things.

Policy sits below placement, so a plan is taken as anything shaped like `placement.Placement`. Services
count per month and jobs once per run, as in the plan's total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from polycloud.policy.context import Context, listing
from polycloud.policy.derived import inherited_residencies
from polycloud.policy.scope import datasets_read
from polycloud.policy.sites import breaches
from polycloud.spec.models import Job, Service

TOLERANCE_USD = 1e-6


class PlacedAt(Protocol):
    @property
    def cluster(self) -> str: ...


class Placed(Protocol):
    """One workload's placement, as the plan reports it."""

    @property
    def workload(self) -> str: ...
    @property
    def totalUSD(self) -> float: ...
    @property
    def egressUSD(self) -> float: ...
    @property
    def assignments(self) -> Sequence[PlacedAt]: ...


def check_budgets(ctx: Context, placed: Mapping[str, Placed]) -> None:
    """Workloads with a budget's label value cost at most its `maxMonthlyUSD` together."""
    for i, budget in enumerate(ctx.policy.spec.budgets):
        members = [
            (w, placed[w.metadata.name])
            for w in ctx.workloads
            if w.metadata.labels.get(budget.label) == budget.value and w.metadata.name in placed
        ]
        total = sum(p.totalUSD for _, p in members)
        if total <= budget.maxMonthlyUSD + TOLERANCE_USD:
            continue
        members.sort(key=lambda m: -m[1].totalUSD)
        top = members[0][0]
        each = listing([f"{w.metadata.name} ${p.totalUSD:,.2f}" for w, p in members])
        over = total - budget.maxMonthlyUSD
        tag = f"{budget.label}={budget.value}"
        ctx.report(
            ("budgets", i),
            top,
            ("metadata", "labels", budget.label),
            f"workloads labelled {tag} cost ${total:,.2f}/month ({each}), "
            f"over the budget of ${budget.maxMonthlyUSD:,.2f}",
            f"cut ${over:,.2f}/month from the {tag} workloads (fewer replicas, smaller resources, "
            f"a cheaper pattern) or raise maxMonthlyUSD in policy {ctx.name}",
        )


def check_egress(ctx: Context, placed: Mapping[str, Placed]) -> None:
    """The selected workloads' data egress costs at most `maxEgressUSDPerMonth` together."""
    limit = ctx.policy.spec.maxEgressUSDPerMonth
    if limit is None:
        return
    members = [(w, placed[w.metadata.name]) for w in ctx.workloads if w.metadata.name in placed]
    total = sum(p.egressUSD for _, p in members)
    if total <= limit + TOLERANCE_USD:
        return
    members.sort(key=lambda m: -m[1].egressUSD)
    top = members[0][0]
    each = listing([f"{w.metadata.name} ${p.egressUSD:,.2f}" for w, p in members if p.egressUSD > 0])
    ctx.report(
        ("maxEgressUSDPerMonth",),
        top,
        ("spec", "reads"),
        f"data egress costs ${total:,.2f}/month ({each}), over the limit of ${limit:,.2f}",
        "run readers next to their data (spec.placement.clusters), read less per month, "
        f"or raise maxEgressUSDPerMonth in policy {ctx.name}",
    )


def check_placed(ctx: Context, placed: Mapping[str, Placed]) -> None:
    """Every cluster the plan uses for a selected workload is allowed, and honours residency."""
    for workload in ctx.workloads:
        placement = placed.get(workload.metadata.name)
        if placement is None:
            continue
        for cluster in dict.fromkeys(a.cluster for a in placement.assignments):
            place = ctx.places.get(cluster)
            if place is None:
                continue
            for b in breaches(ctx.policy.spec, place):
                ctx.report(
                    (b.rule,),
                    workload,
                    ("spec", "placement"),
                    f"is planned on cluster {place.describe()}, but {b.reason}",
                    f"plan again under the current policies, or add {b.allow} to {b.rule} "
                    f"of policy {ctx.name}",
                )
            _check_placed_residency(ctx, workload, cluster)


def _check_placed_residency(ctx: Context, workload: Service | Job, cluster: str) -> None:
    if not ctx.policy.spec.enforceResidency:
        return
    place = ctx.places[cluster]
    for i, name in enumerate(datasets_read(workload)):
        dataset = ctx.fleet.datasets.get(name)
        home = dataset.spec.residency if dataset else None
        if home is not None and place.jurisdiction != home:
            ctx.report(
                ("enforceResidency",),
                workload,
                ("spec", "reads", i, "dataset"),
                f"is planned on cluster {place.describe()}, but dataset {name} must stay in {home}",
                f"place it in {home}: plan again, or add spec.placement.jurisdictions: [{home}]",
            )
    for inherited in inherited_residencies(ctx.fleet, workload, ctx.fleet.policies.values()):
        if place.jurisdiction != inherited.jurisdiction:
            ctx.report(
                ("derivedResidency",),
                workload,
                ("spec", "model", inherited.tie),
                f"is planned on cluster {place.describe()}, but it serves a model trained on data that "
                f"must stay in {inherited.jurisdiction} ({inherited.chain})",
                f"place it in {inherited.jurisdiction}, or set derivedResidency: ignore in a policy "
                "that selects it",
            )
