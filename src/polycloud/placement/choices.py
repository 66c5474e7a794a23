"""What each workload may do where: per role and cluster, the offering, its cost and its quota use.

This is the cost model of DESIGN.md §4 applied to all clusters at once: a workload's figures are arrays
over the sites (`grid.py` holds offerings per resource shape, transfer prices and RTTs as matrices;
`eligibility.py` the masks of rules, policies, residency and latency), and only the eligible cells become
`Choice`s, which the optimiser then combines. Clusters that no role may use keep the reasons that rule
them out, for explanations.

The arrays repeat the scalar model's float operations in the same order (`(replicas * price) * hours`,
then `compute + egress`), so every figure is bit-identical to evaluating DESIGN.md §4 cell by cell;
`tests/placement/test_choices.py` holds the two side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Literal, NamedTuple

import numpy as np

from polycloud.catalog import Catalog, Offering
from polycloud.placement.eligibility import Eligibility, Figures, Layout, Reach, Verdict
from polycloud.placement.grid import Floats, Grid, Offers, QuotaKey, Rate
from polycloud.placement.sites import Site, traffic_point
from polycloud.policy.derived import inherited_residencies
from polycloud.policy.scope import selects
from polycloud.spec.fleet import Fleet
from polycloud.spec.models import Job, Policy, Resources, Service, TrafficSource

HOURS_PER_MONTH = 730.0
Role = Literal["active", "standby", "burst"]
__all__ = [
    "HOURS_PER_MONTH",
    "ROLES_BY_PATTERN",
    "Choice",
    "Problem",
    "ProblemBuilder",
    "QuotaKey",
    "Role",
    "describe",
    "source_label",
]

ROLES_BY_PATTERN: dict[str, tuple[Role, ...]] = {
    "single": ("active",),
    "active-active": ("active", "active"),
    "active-passive": ("active", "standby"),
    "burst": ("active", "burst"),
}


class Choice(NamedTuple):
    """One role a workload may take in one cluster, priced.

    A named tuple: a large fleet has about a million of these, and a tuple is built and compared in C
    (a frozen dataclass sets each field through `object.__setattr__` and compares in Python). `cost`
    (compute plus egress, added once) is stored because the optimiser reads it more than anything else.
    """

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
    cost: float


@dataclass
class Problem:
    """One workload's placement problem: its eligible choices per role and why others are out.

    Read-only once built: problems alike share their `rejected`, `coverage` and `would_cost` tables.
    """

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
    would_cost: Mapping[str, float] = field(default_factory=dict)
    """Cluster → active cost had the cluster been allowed (for "cheaper but ruled out")."""


@dataclass(frozen=True)
class Columns:
    """One role of one workload: its rate, what it holds against quotas, the data it moves."""

    role: Role
    replicas: int
    held: int
    """Instances held against the accelerator quota: all replicas when active, one standby, none burst."""
    rate: Rate
    egress: Floats | None
    """USD of data moved, per site; None: none (0.0)."""


Rejections = list[tuple[int, Role, str]]
"""(site index, role, reason) of roles ruled out alone."""


class ProblemBuilder:
    """Builds `Problem`s for every workload of a fleet against resolved sites.

    Problems alike share what they have in common — the `rejected`, `coverage` and (without data to
    move) `would_cost` tables, the floats of equal figures — so a built problem is read-only.
    """

    def __init__(self, fleet: Fleet, sites: dict[str, Site], catalog: Catalog) -> None:
        self.fleet = fleet
        self.sites = sites
        self.catalog = catalog
        self.policies: list[Policy] = list(fleet.policies.values())
        self.grid = Grid(sites, catalog)
        self.eligibility = Eligibility(self.grid)
        roles: tuple[Role, ...] = ("active", "standby", "burst")
        self._keys = {role: [(role, name) for name in sites] for role in roles}
        """(role, cluster) keys of `role_rejected`, one tuple each rather than one per problem."""

    def build(self, workload: Service | Job) -> Problem:
        if isinstance(workload, Service):
            return self._service(workload)
        return self._job(workload)

    # -- services ---------------------------------------------------------------------------
    def _service(self, svc: Service) -> Problem:
        spec = svc.spec
        offers = self.grid.offers(spec.resources, False)
        egress = self._egress([(r.gbPerMonth, r.dataset) for r in spec.reads])
        active: Rate = (spec.replicas, HOURS_PER_MONTH)
        problem, verdict = self._problem(svc, spec.pattern, offers.active_costs(active, egress, True), offers)
        problem.sources = [source_label(t) for t in spec.traffic]
        points = [traffic_point(t, self.catalog, self.sites) for t in spec.traffic]
        budget = spec.latency.maxRttMs if spec.latency else None
        reach = self.eligibility.reach(points, problem.sources, budget)
        if spec.pattern == "active-active":
            problem.coverage = verdict.coverage(reach)
        # Only a lone active role must meet the budget; active-active covers sources between its two.
        budgeted = "active" if spec.pattern != "active-active" and budget is not None else None
        rejections: Rejections = []
        for role in dict.fromkeys(problem.roles):
            if role == "active":
                columns = Columns(role, spec.replicas, spec.replicas, active, egress)
            elif role == "standby":  # 1 * price is price: the same figure as price * hours
                columns = Columns(role, 1, 1, (1, HOURS_PER_MONTH), None)
            else:
                columns = Columns(role, spec.replicas, 0, (spec.replicas, spec.burstHoursPerMonth), None)
            far = reach if role == budgeted else None
            problem.choices[role] = _offer(columns, verdict, far, True, rejections)
        self._reject(problem, rejections)
        return problem

    # -- jobs -------------------------------------------------------------------------------
    def _job(self, job: Job) -> Problem:
        spec = job.spec
        offers = self.grid.offers(spec.resources, spec.spot)
        sizes = self.fleet.datasets
        egress = self._egress([(sizes[r.dataset].spec.sizeGB, r.dataset) for r in spec.reads])
        # (nodes * hours) * price, times 1.0 (which changes no float) to fit the services' form.
        rate: Rate = (spec.nodes * spec.hours, 1.0)
        problem, verdict = self._problem(job, "single", offers.active_costs(rate, egress, False), offers)
        rejections: Rejections = []
        columns = Columns("active", spec.nodes, spec.nodes, rate, egress)
        problem.choices["active"] = _offer(columns, verdict, None, False, rejections)
        self._reject(problem, rejections)
        return problem

    # -- shared -----------------------------------------------------------------------------
    def _problem(
        self, workload: Service | Job, pattern: str, would_cost: Mapping[str, float], offers: Offers
    ) -> tuple[Problem, Verdict]:
        """The problem with its rejected clusters and would-be costs; and the verdict over the sites."""
        spec = workload.spec
        resources = spec.resources
        datasets = self.fleet.datasets
        residencies = {
            residency: r.dataset for r in spec.reads if (residency := datasets[r.dataset].spec.residency)
        }
        for inherited in inherited_residencies(self.fleet, workload, self.policies):
            residencies.setdefault(
                inherited.jurisdiction, f"{inherited.dataset} (lineage: {inherited.chain})"
            )
        verdict = self.eligibility.verdict(
            spec.placement,
            tuple(p for p in self.policies if selects(p, workload)),
            residencies,
            offers,
            lambda: f"no offering with {describe(resources)}",
        )
        problem = Problem(
            name=workload.metadata.name,
            kind=workload.kind,
            pattern=pattern,
            roles=ROLES_BY_PATTERN[pattern],
            choices={},
            providers=self.grid.providers,
            rejected=verdict.rejected,
            would_cost=would_cost,
        )
        return problem, verdict

    def _egress(self, reads: list[tuple[float, str]]) -> Floats | None:
        """USD of moving `(GB, dataset)` reads to every site, `sum(GB * transfer price)`; None: no reads."""
        index, datasets = self.grid.index, self.fleet.datasets
        transfer = self.grid.transfer
        terms: list[Floats] = [gb * transfer[index[datasets[name].spec.cluster]] for gb, name in reads]
        if not terms:
            return None
        if len(terms) == 1:
            return 0.0 + terms[0]  # sum() starts from 0, which turns -0.0 into 0.0
        # Several reads are rare; the builtin sum keeps its exact additions on every Python version
        # (3.12 made it compensated).
        return np.array([sum(column) for column in zip(*(t.tolist() for t in terms), strict=True)])

    def _reject(self, problem: Problem, rejections: Rejections) -> None:
        """Record roles ruled out alone, cluster by cluster (roles in pattern order within a cluster)."""
        if rejections:
            rejections.sort(key=lambda r: r[0])  # stable: the roles' order within a site stays
            keys = self._keys
            problem.role_rejected = {keys[role][i]: reason for i, role, reason in rejections}


def _offer(
    columns: Columns, verdict: Verdict, reach: Reach | None, remember: bool, rejections: Rejections
) -> list[Choice]:
    """The role's choices where it is allowed, in site order; the rest go to `rejections`.

    A lone active role beyond the latency budget is out (`reach`); otherwise a choice whose quota could
    never hold it, even alone, is out (the layout's `over`). `remember`: keep the compute figures for
    workloads alike.
    """
    layout = verdict.layout(columns.held)
    rows = _rows(columns, layout, layout.at(columns.rate, remember))
    near = _near(columns.role, verdict, layout, reach, rejections) if reach is not None else None
    if near is None:
        rejections.extend((i, columns.role, reason) for i, reason in layout.over)
        return list(map(Choice._make, rows))
    return list(map(Choice._make, compress(rows, near)))


def _near(
    role: Role, verdict: Verdict, layout: Layout, reach: Reach, rejections: Rejections
) -> list[bool] | None:
    """Which of the layout's sites are within the latency budget (None: all of them); the allowed sites
    beyond it are rejected as late, and only the others for their quota (the reason the model gives first)."""
    far = np.flatnonzero(verdict.allowed & reach.late).tolist()
    if not far:
        return None
    rejections.extend((i, role, reach.message(i)) for i in far)
    rejections.extend((i, role, reason) for i, reason in layout.over if not reach.late[i])
    near: list[bool] = (~reach.late[layout.where]).tolist()
    return near


def _rows(columns: Columns, layout: Layout, figures: Figures) -> Iterator[tuple[object, ...]]:
    """The choices' fields, zipped column by column (each column gathered at once, in C)."""
    count = len(layout.where)
    if columns.egress is None:
        egress: Iterable[float] = repeat(0.0, count)
        costs = figures.bare_costs
    else:
        moved = columns.egress[layout.where]
        egress, costs = moved.tolist(), (figures.compute + moved).tolist()
    return zip(
        repeat(columns.role, count),
        layout.names,
        layout.offerings,
        repeat(columns.replicas, count),
        layout.prices,
        layout.spot,
        figures.computes,
        egress,
        layout.keys,
        layout.usage,
        costs,
        strict=True,
    )


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
