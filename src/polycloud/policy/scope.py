"""Which workloads a policy governs, and the facts of a cluster that policies judge."""

from __future__ import annotations

from dataclasses import dataclass

from polycloud.catalog import Catalog
from polycloud.spec.models import Cluster, Job, Policy, Service


def selects(policy: Policy, workload: Service | Job) -> bool:
    """True when `policy` applies to `workload`: no selector, or every `matchLabels` pair matches."""
    selector = policy.spec.selector
    if selector is None:
        return True
    labels = workload.metadata.labels
    return all(labels.get(key) == value for key, value in selector.matchLabels.items())


def datasets_read(workload: Service | Job) -> list[str]:
    """Names of the datasets `workload` reads, in `spec.reads` order."""
    if isinstance(workload, Service):
        return [r.dataset for r in workload.spec.reads]
    return [r.dataset for r in workload.spec.reads]


@dataclass(frozen=True)
class Place:
    """Where a cluster is, as policies see it."""

    name: str
    provider: str
    region: str
    jurisdiction: str | None

    @property
    def qualified_region(self) -> str:
        return f"{self.provider}/{self.region}"

    def describe(self) -> str:
        return f"{self.name} ({self.qualified_region}, jurisdiction {self.jurisdiction or 'unknown'})"


def place_of(cluster: Cluster, catalog: Catalog) -> Place:
    """A cluster's provider, region and jurisdiction (its `location` overrides the catalog's)."""
    spec = cluster.spec
    jurisdiction = spec.location.jurisdiction if spec.location else None
    if jurisdiction is None:
        region = catalog.region(spec.provider, spec.region)
        jurisdiction = region.jurisdiction if region else None
    return Place(cluster.metadata.name, spec.provider, spec.region, jurisdiction)
