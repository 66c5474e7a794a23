"""Rules about where workloads run: allowed providers, regions and jurisdictions, and data residency.

The planner already keeps workloads out of clusters these rules forbid; here we catch what the planner
cannot fix — allow-lists and pins written in a spec that contradict a policy or a dataset's residency.
"""

from __future__ import annotations

from dataclasses import dataclass

from polycloud.policy.context import Context, listing
from polycloud.policy.scope import Place, datasets_read
from polycloud.spec.fleet import FieldPath
from polycloud.spec.models import Job, PolicySpec, Service

PLACEMENT: FieldPath = ("spec", "placement")


@dataclass(frozen=True)
class Breach:
    """Why a policy rule forbids a place, and what to add to the policy to allow it instead."""

    rule: str
    reason: str
    allow: str


def breaches(rules: PolicySpec, place: Place) -> list[Breach]:
    """Every allow-list of `rules` that excludes `place`."""
    found = []
    if rules.providers is not None and place.provider not in rules.providers:
        found.append(Breach("providers", f"provider {place.provider} is not allowed", place.provider))
    if rules.regions is not None and place.qualified_region not in rules.regions:
        found.append(
            Breach("regions", f"region {place.qualified_region} is not allowed", place.qualified_region)
        )
    if rules.jurisdictions is not None and place.jurisdiction not in rules.jurisdictions:
        where = place.jurisdiction or "unknown"
        found.append(Breach("jurisdictions", f"jurisdiction {where} is not allowed", where))
    return found


def check_allow_lists(ctx: Context) -> None:
    """A workload's `placement` allow-lists may only name places the policy allows."""
    rules = ctx.policy.spec
    for workload in ctx.workloads:
        spec_rules = workload.spec.placement
        for i, cluster in enumerate(spec_rules.clusters or []):
            place = ctx.places.get(cluster)
            for b in breaches(rules, place) if place else []:
                ctx.report(
                    (b.rule,),
                    workload,
                    (*PLACEMENT, "clusters", i),
                    f"pins cluster {ctx.places[cluster].describe()}, but {b.reason}",
                    f"remove {cluster} from spec.placement.clusters, or add {b.allow} to {b.rule} "
                    f"of policy {ctx.name}",
                )
        for i, provider in enumerate(spec_rules.providers or []):
            _check_provider(ctx, workload, i, provider)
        for i, jurisdiction in enumerate(spec_rules.jurisdictions or []):
            if rules.jurisdictions is not None and jurisdiction not in rules.jurisdictions:
                ctx.report(
                    ("jurisdictions",),
                    workload,
                    (*PLACEMENT, "jurisdictions", i),
                    f"allows jurisdiction {jurisdiction}, but the policy allows only "
                    f"{listing(rules.jurisdictions)}",
                    f"remove {jurisdiction} from spec.placement.jurisdictions, or add it to jurisdictions "
                    f"of policy {ctx.name}",
                )


def _check_provider(ctx: Context, workload: Service | Job, index: int, provider: str) -> None:
    rules = ctx.policy.spec
    path = (*PLACEMENT, "providers", index)
    remedy = f"remove {provider} from spec.placement.providers, or allow it in policy {ctx.name}"
    if rules.providers is not None and provider not in rules.providers:
        ctx.report(
            ("providers",),
            workload,
            path,
            f"allows provider {provider}, but the policy allows only {listing(rules.providers)}",
            remedy,
        )
    if rules.regions is not None and not any(r.startswith(f"{provider}/") for r in rules.regions):
        ctx.report(
            ("regions",),
            workload,
            path,
            f"allows provider {provider}, but none of its regions is allowed ({listing(rules.regions)})",
            remedy,
        )


def check_residency(ctx: Context) -> None:
    """Whatever reads a dataset with `residency: J` may be pinned or allowed only in J; the data too."""
    if not ctx.policy.spec.enforceResidency:
        return
    for workload in ctx.workloads:
        for i, name in enumerate(datasets_read(workload)):
            dataset = ctx.fleet.datasets.get(name)
            if dataset is None or dataset.spec.residency is None:
                continue
            _check_read(ctx, workload, i, name, dataset.spec.residency)


def _check_read(ctx: Context, workload: Service | Job, index: int, name: str, home: str) -> None:
    rules = ctx.policy.spec
    if rules.jurisdictions is not None and home not in rules.jurisdictions:
        ctx.report(
            ("jurisdictions",),
            workload,
            ("spec", "reads", index, "dataset"),
            f"reads dataset {name}, which must stay in {home}, a jurisdiction the policy does not allow",
            f"stop reading {name}, or add {home} to jurisdictions of policy {ctx.name}",
        )
    spec_rules = workload.spec.placement
    stay = f"dataset {name} must stay in {home}"
    for k, jurisdiction in enumerate(spec_rules.jurisdictions or []):
        if jurisdiction != home:
            ctx.report(
                ("enforceResidency",),
                workload,
                (*PLACEMENT, "jurisdictions", k),
                f"allows jurisdiction {jurisdiction}, but {stay}",
                f"place it in {home}: remove {jurisdiction} from spec.placement.jurisdictions",
            )
    for k, cluster in enumerate(spec_rules.clusters or []):
        place = ctx.places.get(cluster)
        if place is not None and place.jurisdiction != home:
            ctx.report(
                ("enforceResidency",),
                workload,
                (*PLACEMENT, "clusters", k),
                f"pins cluster {place.describe()}, but {stay}",
                f"place it in {home}: pin a cluster in {home} instead of {cluster}",
            )
    dataset = ctx.fleet.datasets[name]
    place = ctx.places.get(dataset.spec.cluster)
    if place is not None and place.jurisdiction != home:
        ctx.report(
            ("enforceResidency",),
            dataset,
            ("spec", "cluster"),
            f"has residency {home} but lives in cluster {place.describe()}",
            f"move it to a cluster in {home}, or correct its residency",
        )
