"""Which sites a workload may use, as masks over the sites, and the reasons that keep the others out.

Workloads share rules: most have no allow-list, the same policies govern many, a few datasets pin them to
a jurisdiction and the same few resource shapes recur. So the verdict over all sites (allow-lists,
policies, residency, an offering) is worked out once per distinct combination (a `Signature`) and every
workload with that combination reuses it — the mask and the very reason lists, which nothing changes once
built. The reasons are the single source: a site is allowed exactly when none applies. Quotas work the
same way per verdict and instances held (`Layout`), latency per set of traffic sources and budget
(`Reach`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from polycloud.catalog import Offering
from polycloud.placement.grid import Flags, Floats, Grid, Offers, QuotaKey, Rate
from polycloud.placement.sites import Point, Site
from polycloud.spec.models import PlacementRules, Policy

Signature = tuple[object, ...]
"""Allow-lists, governing policies, residencies and resource shape: all a verdict depends on."""
QUOTA_SLACK = 1e-9


@dataclass(frozen=True)
class Figures:
    """A role's compute over a layout's sites: the array, its floats, and compute + 0.0 (the cost when
    no data moves) — the same float objects whenever that addition changes nothing."""

    compute: Floats
    computes: list[float]
    bare_costs: list[float]


@dataclass(frozen=True, eq=False)
class Layout:
    """Where one role may go under one verdict, and the columns of its choices that do not depend on
    the workload's data (its egress is added by `ProblemBuilder`)."""

    where: npt.NDArray[np.intp]
    """Site indices: allowed, and the quota could hold the role (site order)."""
    names: list[str]
    offerings: list[Offering]
    price: Floats
    prices: list[float]
    spot: list[bool]
    keys: list[QuotaKey | None]
    usage: list[float]
    over: list[tuple[int, str]]
    """Allowed sites whose quota could never hold the role, even alone: (site index, reason)."""
    figures: dict[Rate, Figures] = field(default_factory=dict)

    def at(self, rate: Rate, remember: bool) -> Figures:
        """The compute figures at `rate`; remembered when workloads are likely to share it (services
        come in a few replica counts, jobs' node-hours vary)."""
        found = self.figures.get(rate)
        if found is None:
            scale, hours = rate
            compute = (scale * self.price) * hours
            computes = compute.tolist()
            # x + 0.0 is x except for -0.0 (which a price of -0.0 would give): then keep them apart.
            bare = computes if not np.signbit(compute).any() else (compute + 0.0).tolist()
            found = Figures(compute, computes, bare)
            if remember:
                self.figures[rate] = found
        return found


@dataclass(frozen=True, eq=False)
class Verdict:
    """Sites a workload may use (an offering and nothing against it) and why the others are out."""

    grid: Grid
    offers: Offers
    allowed: Flags
    rejected: dict[str, list[str]]
    """Cluster → reasons, in site order (shared by every problem with this verdict)."""
    layouts: dict[int, Layout] = field(default_factory=dict)
    coverages: dict[int, list[frozenset[str]]] = field(default_factory=dict)

    def layout(self, held: int) -> Layout:
        """Where a role holding `held` instances against quotas may go (remembered per count)."""
        found = self.layouts.get(held)
        if found is None:
            found = self.layouts[held] = self._lay_out(held)
        return found

    def _lay_out(self, held: int) -> Layout:
        offers = self.offers
        usage = held * offers.count
        keyed = offers.keyed & (usage > 0)
        over = self.allowed & keyed & (usage > offers.cap + QUOTA_SLACK)
        where = np.flatnonzero(self.allowed & ~over)
        reasons = [
            (i, f"needs {float(usage[i]):g} {offering.accelerator} but its quota is {offers.caps[i]}")
            for i in np.flatnonzero(over).tolist()
            if (offering := offers.offerings[i]) is not None
        ]
        return Layout(
            where=where,
            names=self.grid.names[where].tolist(),
            offerings=offers.offerings[where].tolist(),
            price=offers.price[where],
            prices=offers.prices[where].tolist(),
            spot=offers.paid_spot[where].tolist(),
            keys=[k if q else None for k, q in zip(offers.keys[where], keyed[where].tolist(), strict=True)],
            usage=np.where(keyed, usage, 0.0)[where].tolist(),
            over=reasons,
        )

    def coverage(self, reach: Reach) -> list[frozenset[str]]:
        """Per traffic source, the allowed sites within the budget (shared by problems alike)."""
        found = self.coverages.get(id(reach))  # reaches live as long as the verdicts: ids are stable
        if found is None:
            names = self.grid.names
            found = [frozenset(names[self.allowed & near].tolist()) for near in reach.within]
            self.coverages[id(reach)] = found
        return found


@dataclass(frozen=True, eq=False)
class Reach:
    """How a set of traffic sources and a latency budget see every site."""

    within: list[Flags]
    """Per source: the sites within the budget (all of them when there is no budget)."""
    late: Flags
    """Sites whose worst RTT exceeds the budget."""
    worst: npt.NDArray[np.intp]
    """Per site, the source with the largest RTT (the first of equals, as `max` picks it)."""
    highest: Floats
    labels: list[str]
    budget: float | None
    messages: dict[int, str] = field(default_factory=dict)

    def message(self, site: int) -> str:
        """Why a late site is too far (formatted when first asked: most are never read)."""
        found = self.messages.get(site)
        if found is None:
            source = self.labels[self.worst[site]]
            found = f"RTT {float(self.highest[site]):.0f} ms from {source} exceeds maxRttMs {self.budget:g}"
            self.messages[site] = found
        return found


class Eligibility:
    """Verdicts and reaches, remembered per signature (see the module docstring)."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._verdicts: dict[Signature, Verdict] = {}
        self._policy_reasons: dict[tuple[str, ...], list[list[str]]] = {}
        self._reaches: dict[tuple[tuple[Point, ...], tuple[str, ...], float | None], Reach] = {}

    def verdict(
        self,
        rules: PlacementRules,
        policies: tuple[Policy, ...],
        residencies: dict[str, str],
        offers: Offers,
        no_offering: Callable[[], str],
    ) -> Verdict:
        """The verdict for a workload with these rules, governing policies, residencies and offers;
        `no_offering` says what it asks for, should no site have it (called once per signature)."""
        key: Signature = (
            _names(rules.clusters),
            _names(rules.providers),
            _names(rules.jurisdictions),
            tuple(p.metadata.name for p in policies),
            tuple(residencies.items()),
            offers.shape,
        )
        found = self._verdicts.get(key)
        if found is None:
            found = self._judge(rules, policies, residencies, offers, no_offering())
            self._verdicts[key] = found
        return found

    def _judge(
        self,
        rules: PlacementRules,
        policies: tuple[Policy, ...],
        residencies: dict[str, str],
        offers: Offers,
        no_offering: str,
    ) -> Verdict:
        judged = self._policies(policies)
        rejected: dict[str, list[str]] = {}
        allowed = np.zeros(len(self.grid.sites), dtype=bool)
        for i, site in enumerate(self.grid.sites):
            # The order of reasons is the explanation's: rules, policies, residency, then the offering.
            reasons = [*rule_reasons(site, rules), *judged[i]]
            for jurisdiction, dataset in residencies.items():
                if site.jurisdiction != jurisdiction:
                    reasons.append(
                        f"in jurisdiction {site.jurisdiction or 'unknown'}, "
                        f"but dataset {dataset} must stay in {jurisdiction}"
                    )
            if not offers.present[i]:
                reasons.append(no_offering)
            if reasons:
                rejected[site.name] = reasons
            else:
                allowed[i] = True
        return Verdict(self.grid, offers, allowed, rejected)

    def _policies(self, policies: tuple[Policy, ...]) -> list[list[str]]:
        """Per site, what the policies governing a workload say against it (shared by workloads)."""
        key = tuple(p.metadata.name for p in policies)
        found = self._policy_reasons.get(key)
        if found is None:
            found = [policy_reasons(site, policies) for site in self.grid.sites]
            self._policy_reasons[key] = found
        return found

    def reach(self, points: list[Point], labels: list[str], budget: float | None) -> Reach:
        """RTTs from each source to every site against `budget` (many services share sources)."""
        key = (tuple(points), tuple(labels), budget)
        found = self._reaches.get(key)
        if found is None:
            found = self._measure(points, labels, budget)
            self._reaches[key] = found
        return found

    def _measure(self, points: list[Point], labels: list[str], budget: float | None) -> Reach:
        count = len(self.grid.sites)
        if budget is None or not points:
            within = [np.ones(count, dtype=bool)] * len(points)
            nowhere = np.zeros(count, dtype=bool)
            return Reach(within, nowhere, np.zeros(count, np.intp), np.zeros(count), [], None)
        rtts: Floats = np.stack([self.grid.rtt_row(p) for p in points])
        worst = rtts.argmax(axis=0)
        highest = rtts[worst, np.arange(count)]
        return Reach([row <= budget for row in rtts], highest > budget, worst, highest, labels, budget)


def _names(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


def rule_reasons(site: Site, rules: PlacementRules) -> list[str]:
    """What a workload's own allow-lists say against `site`."""
    reasons = []
    if rules.clusters is not None and site.name not in rules.clusters:
        reasons.append("not in placement.clusters")
    if rules.providers is not None and site.provider not in rules.providers:
        reasons.append(f"provider {site.provider} not in placement.providers")
    if rules.jurisdictions is not None and site.jurisdiction not in rules.jurisdictions:
        reasons.append(f"jurisdiction {site.jurisdiction or 'unknown'} not in placement.jurisdictions")
    return reasons


def policy_reasons(site: Site, policies: tuple[Policy, ...]) -> list[str]:
    """What the policies governing a workload say against `site`."""
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
