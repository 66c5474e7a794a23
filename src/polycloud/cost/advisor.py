"""The savings advisor: what could cost less, by how much, and the command that makes it so.

Four kinds of advice, each with a dollar figure (per month for services, per run for jobs):

- `rightsize`: an active (service, cluster) whose mean requests in flight, summed over the gateways'
  fresh load reports, is far below what its replicas can carry (`targetInFlight` each, 4 without an
  autoscaling block). Fewer replicas: saving = dropped replicas × hourly price × 730.
- `replan`: planning the declared fleet again now finds a cheaper placement than the recorded one
  (prices or clusters changed since it was applied). Saving = recorded cost − new plan's cost.
- `spot`: a job that does not ask for spot where its cluster's offering has a lower spot price.
  Saving per run = nodes × hours × (on-demand − spot).
- `replicate`: a dataset read across clusters every month by active services of another cluster, where
  keeping a copy there costs less in storage than the egress it saves. The catalog has no storage
  prices, so storage is assumed at `ASSUMED_STORAGE_USD_PER_GB_MONTH` (said in the advice).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from polycloud.cost.pricing import HOURS_PER_MONTH, PriceBook, stored_hourly
from polycloud.cost.report import money
from polycloud.placement import Plan
from polycloud.spec.models import Dataset, Job, Service

UNDERUSED_SHARE = 0.25
"""A cluster's replicas are underused when their load is below this share of what they can carry."""
DEFAULT_TARGET_IN_FLIGHT = 4.0
MIN_SAVING_USD = 0.01
ASSUMED_STORAGE_USD_PER_GB_MONTH = 0.023
"""Object storage, standard class: AWS S3 Standard's published us-east-1 price (first 50 TB)."""
APPLY = "polycloud apply <your spec files> --yes"
Key = tuple[str, str]


@dataclass(frozen=True)
class Advice:
    """One saving."""

    kind: str
    target: str
    savingUSD: float
    per: str
    """"month" (services, datasets) or "run" (jobs)."""
    detail: str
    command: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "savingUSD": self.savingUSD,
            "per": self.per,
            "detail": self.detail,
            "command": self.command,
        }


@dataclass(frozen=True)
class Deployed:
    """A workload as recorded: its document and its stored placement (assignment dicts)."""

    workload: Service | Job
    placement: Sequence[Mapping[str, Any]]

    @property
    def name(self) -> str:
        return self.workload.metadata.name


def _active(d: Deployed) -> list[Mapping[str, Any]]:
    return [a for a in d.placement if a.get("role") == "active"]


def rightsizing(
    deployed: Sequence[Deployed], load: Mapping[Key, float], running: Mapping[Key, int]
) -> list[Advice]:
    """Fewer replicas where the measured load is far below what the running ones can carry."""
    advice = []
    for d in deployed:
        if not isinstance(d.workload, Service):
            continue
        scaling = d.workload.spec.autoscaling
        target = scaling.targetInFlight if scaling else DEFAULT_TARGET_IN_FLIGHT
        floor = scaling.minReplicas if scaling else 1
        for a in _active(d):
            cluster = str(a.get("cluster"))
            found = _rightsize(
                d, cluster, load.get((d.name, cluster)), running.get((d.name, cluster), 0), target, floor
            )
            if found is not None:
                advice.append(found)
    return advice


def _rightsize(
    d: Deployed, cluster: str, load: float | None, count: int, target: float, floor: int
) -> Advice | None:
    hourly = stored_hourly(d.placement, cluster)
    if load is None or hourly is None or count == 0 or load >= UNDERUSED_SHARE * count * target:
        return None
    needed = max(floor, 1, math.ceil(load / target))
    if needed >= count:
        return None
    saving = (count - needed) * hourly * HOURS_PER_MONTH
    setting = "spec.autoscaling.minReplicas" if d.workload.spec.autoscaling else "spec.replicas"  # type: ignore[union-attr]
    return Advice(
        kind="rightsize",
        target=f"{d.name}@{cluster}",
        savingUSD=money(saving),
        per="month",
        detail=(
            f"{count} replicas carry {load:.2f} requests in flight on average, "
            f"{100 * load / (count * target):.1f}% of their capacity at {target:g} each; "
            f"{needed} would do: {count - needed} × ${hourly:.4f}/h × 730 h"
        ),
        command=f"set {setting}: {needed} in Service {d.name}, then: {APPLY}",
    )


def replanning(deployed: Sequence[Deployed], plan: Plan) -> list[Advice]:
    """Workloads that a plan made now would place for less than their recorded placement."""
    advice = []
    for d in deployed:
        fresh = plan.placement(d.name)
        recorded = sum(float(a.get("costUSD", 0.0)) for a in d.placement)
        if fresh is None or recorded - fresh.totalUSD < MIN_SAVING_USD:
            continue
        before = ", ".join(f"{a.get('cluster')} ({a.get('role')})" for a in d.placement)
        after = ", ".join(f"{a.cluster} ({a.role})" for a in fresh.assignments)
        advice.append(
            Advice(
                kind="replan",
                target=d.name,
                savingUSD=money(recorded - fresh.totalUSD),
                per="run" if fresh.kind == "Job" else "month",
                detail=f"recorded on {before} at ${recorded:,.2f}; a plan made now puts it on {after} "
                f"at ${fresh.totalUSD:,.2f}",
                command=f"re-apply the unchanged specs to re-plan: {APPLY}",
            )
        )
    return advice


def spot_jobs(deployed: Sequence[Deployed], prices: PriceBook) -> list[Advice]:
    """Jobs paying on-demand where their cluster has a cheaper spot price."""
    advice = []
    for d in deployed:
        job = d.workload
        if not isinstance(job, Job) or job.spec.spot or not d.placement:
            continue
        cluster = str(d.placement[0].get("cluster"))
        on_demand = stored_hourly(d.placement, cluster)
        spot = prices.offering_hourly(cluster, job.spec.resources, spot=True)
        if on_demand is None or spot is None or on_demand - spot <= 0:
            continue
        saving = job.spec.nodes * job.spec.hours * (on_demand - spot)
        if saving < MIN_SAVING_USD:
            continue
        advice.append(
            Advice(
                kind="spot",
                target=d.name,
                savingUSD=money(saving),
                per="run",
                detail=f"{job.spec.nodes} nodes × {job.spec.hours:g} h × (${on_demand:.4f} on-demand − "
                f"${spot:.4f} spot) on {cluster}; preemptions resume from checkpoints",
                command=f"set spec.spot: true in Job {d.name}, then: {APPLY}",
            )
        )
    return advice


def replicas_of_datasets(
    deployed: Sequence[Deployed], datasets: Mapping[str, Dataset], prices: PriceBook
) -> list[Advice]:
    """A copy of a dataset next to the services that read it from afar, where egress outweighs storage."""
    egress: dict[Key, tuple[float, list[str]]] = {}
    for d in deployed:
        if not isinstance(d.workload, Service):
            continue
        for read in d.workload.spec.reads:
            home = datasets.get(read.dataset)
            for a in _active(d):
                cluster = str(a.get("cluster"))
                price = prices.transfer(home.spec.cluster, cluster) if home else None
                if not price:
                    continue
                usd, readers = egress.get((read.dataset, cluster), (0.0, []))
                egress[(read.dataset, cluster)] = (usd + read.gbPerMonth * price, [*readers, d.name])
    advice = [
        _replica_advice(datasets[name], cluster, usd, readers, prices)
        for (name, cluster), (usd, readers) in egress.items()
    ]
    return [a for a in advice if a is not None]


def _replica_advice(
    dataset: Dataset, cluster: str, egress: float, readers: list[str], prices: PriceBook
) -> Advice | None:
    storage = dataset.spec.sizeGB * ASSUMED_STORAGE_USD_PER_GB_MONTH
    saving = egress - storage
    if saving < MIN_SAVING_USD:
        return None
    copy = dataset.spec.sizeGB * (prices.transfer(dataset.spec.cluster, cluster) or 0.0)
    name = dataset.metadata.name
    return Advice(
        kind="replicate",
        target=f"{name}→{cluster}",
        savingUSD=money(saving),
        per="month",
        detail=(
            f"{', '.join(sorted(set(readers)))} read it across clusters for ${egress:,.2f}/month of egress; "
            f"a copy of {dataset.spec.sizeGB:g} GB on {cluster} stores for ${storage:,.2f}/month (assumed "
            f"${ASSUMED_STORAGE_USD_PER_GB_MONTH}/GB-month: the catalog has no storage prices) and costs "
            f"${copy:,.2f} once to copy"
        ),
        command=f"declare Dataset {name}-{cluster} (cluster: {cluster}, sizeGB: {dataset.spec.sizeGB:g}), "
        f"point the reads of {', '.join(sorted(set(readers)))} at it, then: {APPLY}",
    )


def ranked(*groups: list[Advice]) -> list[Advice]:
    """Every advice, biggest saving first."""
    return sorted((a for g in groups for a in g), key=lambda a: (-a.savingUSD, a.kind, a.target))
