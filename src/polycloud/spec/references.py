"""Checks that need the whole fleet (and the catalog): names that must exist, shares, private sites."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from polycloud.catalog import Catalog
from polycloud.errors import NotFoundError, SpecIssue
from polycloud.spec.fleet import FieldPath, Fleet
from polycloud.spec.hints import did_you_mean
from polycloud.spec.models import Job, PlacementRules, Service
from polycloud.spec.roots import outside_roots

SHARE_TOLERANCE = 1e-6


def check_references(fleet: Fleet, catalog: Catalog) -> list[SpecIssue]:
    """Every cross-document problem of `fleet`, each pointing at the field to fix."""
    issues: list[SpecIssue] = []
    for cluster in fleet.clusters.values():
        issues.extend(_check_cluster(fleet, cluster.metadata.name, catalog))
    for dataset in fleet.datasets.values():
        where = fleet.where("Dataset", dataset.metadata.name)
        if dataset.spec.cluster not in fleet.clusters:
            issues.append(
                where.issue(("spec", "cluster"), _unknown("cluster", dataset.spec.cluster, fleet.clusters))
            )
    for service in fleet.services.values():
        issues.extend(_check_service(fleet, service, catalog))
    for job in fleet.jobs.values():
        issues.extend(_check_reads(fleet, job, [r.dataset for r in job.spec.reads]))
        issues.extend(_check_rules(fleet, job, job.spec.placement))
    return issues


def _check_cluster(fleet: Fleet, name: str, catalog: Catalog) -> list[SpecIssue]:
    spec = fleet.clusters[name].spec
    where = fleet.where("Cluster", name)
    issues: list[SpecIssue] = []
    if spec.provider in catalog.providers:
        if catalog.region(spec.provider, spec.region) is None:
            hint = did_you_mean(spec.region, [r.region for r in catalog.regions(spec.provider)])
            issues.append(
                where.issue(("spec", "region"), f"unknown {spec.provider} region {spec.region!r}{hint}")
            )
        elif spec.instances is None and not catalog.offerings(spec.provider, spec.region):
            issues.append(where.issue(("spec", "region"), f"the catalog has no offerings in {spec.region}"))
    else:
        site = (
            f"private site (provider {spec.provider!r} is not one of {', '.join(sorted(catalog.providers))})"
        )
        if spec.location is None:
            issues.append(where.issue(("spec",), f"a {site} must give location: {{lat, lon, jurisdiction}}"))
        if not spec.instances:
            issues.append(where.issue(("spec",), f"a {site} must list its instances"))
    return issues


def _check_service(fleet: Fleet, service: Service, catalog: Catalog) -> list[SpecIssue]:
    spec = service.spec
    where = fleet.where("Service", service.metadata.name)
    issues = _check_reads(fleet, service, [r.dataset for r in spec.reads])
    issues.extend(_check_rules(fleet, service, spec.placement))
    path = spec.model.path if spec.model is not None else None
    found = path is not None and (Path(path).exists() if spec.runtime is not None else Path(path).is_file())
    if path is not None and not found:
        what = "model file or folder" if spec.runtime is not None else "model file"
        issues.append(where.issue(("spec", "model", "path"), f"{what} not found: {path}"))
    elif path is not None and (outside := outside_roots(path, where.model_roots)):
        issues.append(where.issue(("spec", "model", "path"), outside))
    if spec.traffic:
        total = sum(t.share for t in spec.traffic)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            issues.append(where.issue(("spec", "traffic"), f"traffic shares sum to {total:g}, not 1"))
    issues.extend(_check_routing(fleet, service))
    known_sites = {f"{c.spec.provider}/{c.spec.region}" for c in fleet.clusters.values()}
    for i, source in enumerate(spec.traffic):
        if source.region is None or source.region in known_sites:
            continue
        provider, _, region = source.region.partition("/")
        if catalog.region(provider, region) is None:
            choices = sorted(known_sites | {f"{r.provider}/{r.region}" for r in catalog.regions()})
            issues.append(
                where.issue(("spec", "traffic", i, "region"), _unknown("region", source.region, choices))
            )
    return issues


def _check_routing(fleet: Fleet, service: Service) -> list[SpecIssue]:
    """A flag-routed service names a flag of the fleet, its variants, and plain oip-v2 services."""
    routing = service.spec.routing
    if routing is None:
        return []
    where = fleet.where("Service", service.metadata.name)
    path: FieldPath = ("spec", "routing")
    flag = fleet.flags.get(routing.flag)
    if flag is None:
        return [where.issue((*path, "flag"), _unknown("FeatureFlag", routing.flag, fleet.flags))]
    issues: list[SpecIssue] = []
    for variant, target in routing.variants.items():
        at = (*path, "variants", variant)
        if variant not in flag.spec.variants:
            issues.append(where.issue(at, f"flag {routing.flag!r} has no variant {variant!r}", key=True))
            continue
        if isinstance(target, int):
            continue  # a revision of this service: checked against the recorded ones at apply
        other = fleet.services.get(target)
        if other is None:
            issues.append(where.issue(at, _unknown("service", target, fleet.services)))
        elif other is service or other.spec.routing is not None or other.spec.protocol != "oip-v2":
            issues.append(
                where.issue(at, f"{target!r} must be another oip-v2 service that routes by no flag")
            )
    return issues


def check_routed_revisions(fleet: Fleet, recorded: Callable[[str], Collection[int]]) -> list[SpecIssue]:
    """Every revision a flag routes to must be recorded for its service (`recorded`: a service's revision
    numbers, asked only of services that route to a revision; NotFoundError: a new service, with none);
    checked at apply, against the store."""
    issues: list[SpecIssue] = []
    for service in fleet.services.values():
        routing = service.spec.routing
        if routing is None or not routing.revisions():
            continue
        name = service.metadata.name
        try:
            known = recorded(name)
        except NotFoundError:
            known = ()
        for variant, target in routing.variants.items():
            if isinstance(target, int) and target not in known:
                has = f"its revisions are 1..{max(known)}" if known else "it has no revision yet"
                at: FieldPath = ("spec", "routing", "variants", variant)
                issues.append(
                    fleet.where("Service", name).issue(at, f"{name!r} has no revision {target} ({has})")
                )
    return issues


def _check_reads(fleet: Fleet, workload: Service | Job, datasets: list[str]) -> list[SpecIssue]:
    where = fleet.where(workload.kind, workload.metadata.name)
    return [
        where.issue(("spec", "reads", i, "dataset"), _unknown("dataset", name, fleet.datasets))
        for i, name in enumerate(datasets)
        if name not in fleet.datasets
    ]


def _check_rules(fleet: Fleet, workload: Service | Job, rules: PlacementRules) -> list[SpecIssue]:
    where = fleet.where(workload.kind, workload.metadata.name)
    issues: list[SpecIssue] = []
    path: FieldPath = ("spec", "placement")
    for i, name in enumerate(rules.clusters or []):
        if name not in fleet.clusters:
            issues.append(where.issue((*path, "clusters", i), _unknown("cluster", name, fleet.clusters)))
    providers = {c.spec.provider for c in fleet.clusters.values()}
    for i, name in enumerate(rules.providers or []):
        if name not in providers:
            issues.append(where.issue((*path, "providers", i), _unknown("provider", name, providers)))
    return issues


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {what} {name!r}{did_you_mean(name, known)}"
