"""The per-pair cost model the planner used before choices were built with arrays — a test reference.

This is `polycloud.placement.choices` as it was (one `Choice` object per workload × cluster × role, built
in Python loops), kept verbatim apart from this docstring, so that `test_choices.py` can hold the
array-built problems and plans to it bit for bit; and, at the end, the naive costs as
`polycloud.placement.planning` computed them (one pass over the choices per provider).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from polycloud.catalog import Catalog, Offering
from polycloud.placement.sites import (
    Point,
    Site,
    best_offering,
    hourly,
    rtt_ms,
    traffic_point,
    transfer_usd_per_gb,
)
from polycloud.policy.scope import selects
from polycloud.spec.fleet import Fleet
from polycloud.spec.models import Job, PlacementRules, Policy, Resources, Service, TrafficSource

HOURS_PER_MONTH = 730.0
Role = Literal["active", "standby", "burst"]
QuotaKey = tuple[str, str]  # (cluster, accelerator lower-case)

ROLES_BY_PATTERN: dict[str, tuple[Role, ...]] = {
    "single": ("active",),
    "active-active": ("active", "active"),
    "active-passive": ("active", "standby"),
    "burst": ("active", "burst"),
}


@dataclass(frozen=True)
class Choice:
    """One role a workload may take in one cluster, priced."""

    role: Role
    cluster: str
    offering: Offering
    replicas: int
    hourly_usd: float
    spot: bool
    compute_usd: float
    egress_usd: float
    quota_key: QuotaKey | None
    usage: float

    @property
    def cost(self) -> float:
        return self.compute_usd + self.egress_usd


@dataclass
class Problem:
    """One workload's placement problem: its eligible choices per role and why others are out."""

    name: str
    kind: str
    pattern: str
    roles: tuple[Role, ...]
    choices: dict[Role, list[Choice]]
    providers: dict[str, str]
    coverage: list[frozenset[str]] = field(default_factory=list)
    """Active-active only: for each traffic source, the clusters within the latency budget."""
    sources: list[str] = field(default_factory=list)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    """Cluster → reasons that keep every role out of it (rules, residency, no offering)."""
    role_rejected: dict[tuple[Role, str], str] = field(default_factory=dict)
    """(role, cluster) → why that role alone is out (latency budget, quota too small)."""
    would_cost: dict[str, float] = field(default_factory=dict)
    """Cluster → active cost had the cluster been allowed (for "cheaper but ruled out")."""


class ProblemBuilder:
    """Builds `Problem`s for every workload of a fleet against resolved sites."""

    def __init__(self, fleet: Fleet, sites: dict[str, Site], catalog: Catalog) -> None:
        self.fleet = fleet
        self.sites = sites
        self.catalog = catalog
        self.policies: list[Policy] = list(fleet.policies.values())
        self._offerings: dict[tuple[str, str | None, float, float, float, bool], Offering | None] = {}
        self._rtts: dict[tuple[Point, Point], float] = {}
        self._policy_verdicts: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    def build(self, workload: Service | Job) -> Problem:
        if isinstance(workload, Service):
            return self._service(workload)
        return self._job(workload)

    # -- services ---------------------------------------------------------------------------
    def _service(self, svc: Service) -> Problem:
        spec = svc.spec
        roles = ROLES_BY_PATTERN[spec.pattern]
        problem = self._problem(svc, spec.pattern, roles)
        points = [traffic_point(t, self.catalog, self.sites) for t in spec.traffic]
        problem.sources = [source_label(t) for t in spec.traffic]
        budget = spec.latency.maxRttMs if spec.latency else None
        covering: list[set[str]] = [set() for _ in points]
        datasets = [r.dataset for r in spec.reads]
        for site, offering, reasons in self._candidates(
            problem, svc, spec.resources, spec.placement, datasets
        ):
            price = offering.hourly_usd
            egress = sum(r.gbPerMonth * self._transfer(r.dataset, site) for r in spec.reads)
            active_compute = spec.replicas * price * HOURS_PER_MONTH
            problem.would_cost[site.name] = active_compute + egress
            if reasons:
                continue
            rtts = [self._rtt(p, site.point) for p in points]
            for i, rtt in enumerate(rtts):
                if budget is None or rtt <= budget:
                    covering[i].add(site.name)
            late = self._late(problem.sources, rtts, budget)
            for role in dict.fromkeys(roles):
                if role == "active":
                    choice = self._choice(
                        site, offering, "active", spec.replicas, active_compute, egress, False
                    )
                    if late and spec.pattern != "active-active":
                        problem.role_rejected[("active", site.name)] = late
                        continue
                elif role == "standby":
                    choice = self._choice(site, offering, "standby", 1, price * HOURS_PER_MONTH, 0.0, False)
                else:
                    burst = spec.replicas * price * spec.burstHoursPerMonth
                    choice = self._choice(site, offering, "burst", spec.replicas, burst, 0.0, False)
                self._offer(problem, choice, site)
        if spec.pattern == "active-active":
            problem.coverage = [frozenset(c) for c in covering]
        return problem

    # -- jobs -------------------------------------------------------------------------------
    def _job(self, job: Job) -> Problem:
        spec = job.spec
        problem = self._problem(job, "single", ("active",))
        datasets = [r.dataset for r in spec.reads]
        for site, offering, reasons in self._candidates(
            problem, job, spec.resources, spec.placement, datasets
        ):
            price = hourly(offering, spec.spot)
            paid_spot = spec.spot and offering.spot_hourly_usd is not None
            egress = sum(
                self.fleet.datasets[r.dataset].spec.sizeGB * self._transfer(r.dataset, site)
                for r in spec.reads
            )
            compute = spec.nodes * spec.hours * price
            problem.would_cost[site.name] = compute + egress
            if reasons:
                continue
            choice = self._choice(site, offering, "active", spec.nodes, compute, egress, paid_spot)
            self._offer(problem, choice, site)
        return problem

    # -- shared -----------------------------------------------------------------------------
    def _problem(self, workload: Service | Job, pattern: str, roles: tuple[Role, ...]) -> Problem:
        return Problem(
            name=workload.metadata.name,
            kind=workload.kind,
            pattern=pattern,
            roles=roles,
            choices={role: [] for role in roles},
            providers={name: site.provider for name, site in self.sites.items()},
        )

    def _candidates(
        self,
        problem: Problem,
        workload: Service | Job,
        resources: Resources,
        rules: PlacementRules,
        datasets: Iterable[str],
    ) -> Iterable[tuple[Site, Offering, list[str]]]:
        """Sites with an offering, and the reasons (if any) that rule each out; all reasons are recorded."""
        residencies = {
            self.fleet.datasets[d].spec.residency: d
            for d in datasets
            if self.fleet.datasets[d].spec.residency
        }
        governing = tuple(p for p in self.policies if selects(p, workload))
        for site in self.sites.values():
            reasons = [*self._rule_reasons(site, rules), *self._policy_reasons(site, governing)]
            for jurisdiction, dataset in residencies.items():
                if site.jurisdiction != jurisdiction:
                    reasons.append(
                        f"in jurisdiction {site.jurisdiction or 'unknown'}, "
                        f"but dataset {dataset} must stay in {jurisdiction}"
                    )
            offering = self._offering(site, resources, isinstance(workload, Job) and workload.spec.spot)
            if offering is None:
                reasons.append(f"no offering with {describe(resources)}")
            if reasons:
                problem.rejected[site.name] = reasons
            if offering is not None:
                yield site, offering, reasons

    def _offering(self, site: Site, resources: Resources, spot: bool) -> Offering | None:
        """`best_offering`, remembered: fleets repeat the same few resource shapes many times."""
        # A plain tuple: hashing the pydantic model itself costs more than the lookup saves.
        key = (
            site.name,
            resources.accelerator,
            resources.accelerators,
            resources.vcpus,
            resources.memoryGiB,
            spot,
        )
        if key not in self._offerings:
            self._offerings[key] = best_offering(site, resources, spot=spot)
        return self._offerings[key]

    def _rtt(self, a: Point, b: Point) -> float:
        """`rtt_ms`, remembered: many services share the same traffic sources."""
        if (a, b) not in self._rtts:
            self._rtts[(a, b)] = rtt_ms(a, b, self.catalog)
        return self._rtts[(a, b)]

    def _rule_reasons(self, site: Site, rules: PlacementRules) -> list[str]:
        reasons = []
        if rules.clusters is not None and site.name not in rules.clusters:
            reasons.append("not in placement.clusters")
        if rules.providers is not None and site.provider not in rules.providers:
            reasons.append(f"provider {site.provider} not in placement.providers")
        if rules.jurisdictions is not None and site.jurisdiction not in rules.jurisdictions:
            reasons.append(f"jurisdiction {site.jurisdiction or 'unknown'} not in placement.jurisdictions")
        return reasons

    def _policy_reasons(self, site: Site, policies: tuple[Policy, ...]) -> list[str]:
        """What the policies governing a workload say against `site` (shared by workloads, so remembered)."""
        key = (site.name, tuple(p.metadata.name for p in policies))
        if key not in self._policy_verdicts:
            self._policy_verdicts[key] = self._judge(site, policies)
        return self._policy_verdicts[key]

    @staticmethod
    def _judge(site: Site, policies: tuple[Policy, ...]) -> list[str]:
        reasons = []
        for policy in policies:
            rules, name = policy.spec, policy.metadata.name
            if rules.providers is not None and site.provider not in rules.providers:
                reasons.append(f"policy {name} does not allow provider {site.provider}")
            if rules.regions is not None and f"{site.provider}/{site.region}" not in rules.regions:
                reasons.append(f"policy {name} does not allow region {site.provider}/{site.region}")
            if rules.jurisdictions is not None and site.jurisdiction not in rules.jurisdictions:
                reasons.append(f"policy {name} does not allow jurisdiction {site.jurisdiction or 'unknown'}")
        return reasons

    def _transfer(self, dataset: str, site: Site) -> float:
        return transfer_usd_per_gb(self.sites[self.fleet.datasets[dataset].spec.cluster], site)

    @staticmethod
    def _late(sources: list[str], rtts: list[float], budget: float | None) -> str:
        if budget is None:
            return ""
        worst = max(range(len(rtts)), key=lambda i: rtts[i], default=None)
        if worst is None or rtts[worst] <= budget:
            return ""
        return f"RTT {rtts[worst]:.0f} ms from {sources[worst]} exceeds maxRttMs {budget:g}"

    @staticmethod
    def _choice(
        site: Site, offering: Offering, role: Role, replicas: int, compute: float, egress: float, spot: bool
    ) -> Choice:
        held = 0 if role == "burst" else (1 if role == "standby" else replicas)
        usage = held * offering.accelerator_count
        limited = site.quota(offering.accelerator) is not None and usage > 0
        key = (site.name, offering.accelerator.lower()) if limited and offering.accelerator else None
        return Choice(
            role=role,
            cluster=site.name,
            offering=offering,
            replicas=replicas,
            hourly_usd=hourly(offering, spot),
            spot=spot,
            compute_usd=compute,
            egress_usd=egress,
            quota_key=key,
            usage=usage if key else 0.0,
        )

    @staticmethod
    def _offer(problem: Problem, choice: Choice, site: Site) -> None:
        """Keep `choice` unless the cluster's quota could never hold it, even alone."""
        cap = site.quota(choice.offering.accelerator)
        if choice.quota_key is not None and cap is not None and choice.usage > cap + 1e-9:
            problem.role_rejected[(choice.role, site.name)] = (
                f"needs {choice.usage:g} {choice.offering.accelerator} but its quota is {cap}"
            )
            return
        problem.choices[choice.role].append(choice)


def describe(resources: Resources) -> str:
    """`A100 x8, >= 96 vCPUs, >= 1152 GiB` — what a workload asks for, for messages."""
    parts = []
    if resources.accelerator:
        parts.append(f"{resources.accelerator} x{resources.accelerators:g}")
    if resources.vcpus:
        parts.append(f">= {resources.vcpus:g} vCPUs")
    if resources.memoryGiB:
        parts.append(f">= {resources.memoryGiB:g} GiB")
    return ", ".join(parts) or "any size"


def source_label(source: TrafficSource) -> str:
    """How a traffic source is named in messages."""
    if source.region is not None:
        return source.region
    loc = source.location
    return f"({loc.lat:g}, {loc.lon:g})" if loc else "?"


# -- naive costs, as planning.py computed them ----------------------------------------------------


def naive_costs(problems: list[Any], placed: set[str]) -> dict[str, dict[str, float]]:
    """Each placed workload's naive cost on every provider that could hold it alone."""
    providers = sorted({prov for p in problems for prov in p.providers.values()})
    costs: dict[str, dict[str, float]] = {}
    for p in problems:
        if p.name in placed:
            found = {prov: _naive_cost(p, prov) for prov in providers}
            costs[p.name] = {prov: cost for prov, cost in found.items() if cost is not None}
    return costs


def _naive_cost(p: Any, provider: str) -> float | None:
    mine = [c for c in p.choices["active"] if p.providers[c.cluster] == provider]
    if not mine:
        return None
    primary = min(mine, key=lambda c: (c.compute_usd, c.cluster))
    if len(p.roles) == 1:
        return primary.cost
    second_role = p.roles[1]
    others = [
        c
        for c in p.choices[second_role]
        if c.cluster != primary.cluster and (p.pattern == "burst" or p.providers[c.cluster] != provider)
    ]
    if not others:
        return None
    return primary.cost + min(others, key=lambda c: (c.compute_usd, c.cluster)).cost
