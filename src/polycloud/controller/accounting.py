"""The accountant: accrues the fleet's cost into the ledger every few seconds, and raises budget alerts.

Runs in a thread of the control plane, off the request path: each pass reads the observed replicas, the
recorded job runs and the declared documents, turns them into accruals (pure functions below) and writes
them in one transaction (`Store.accrue_cost`). What is measured and what is modelled:

- **measured**: replica-seconds of every replica observed `starting` or `ready`, priced at the hourly
  price its revision's placement chose for its cluster; job node-seconds from each attempt's recorded
  start and end, at the price the attempt paid; checkpoint bytes the job controller carried between
  clusters, at the transfer price it recorded.
- **modelled**: dataset reads. A service's `reads` (`gbPerMonth`) are prorated over the seconds its
  replicas were observed running in an *active* cluster and priced at the transfer price from the
  dataset's cluster (DESIGN.md §4); a job's datasets are counted as moved whole once per cluster it
  ran on. Replicas report no bytes read, so these are the plan's figures, not measurements.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from polycloud.catalog import Catalog
from polycloud.cost import PriceBook, budget_statuses
from polycloud.cost.budgets import crossed, month_key, month_start
from polycloud.cost.pricing import BYTES_PER_GB, SECONDS_PER_MONTH
from polycloud.cost.report import CostLine
from polycloud.errors import NotFoundError, PermanentError, PolycloudError
from polycloud.loops import Gate, Loop, always
from polycloud.spec.models import Cluster, Dataset, Job, Policy, Service
from polycloud.state import EventInput, ReplicaRecord, RevisionRecord
from polycloud.state.job_records import JobRunRecord
from polycloud.state.ledger import (
    BudgetAlertInput,
    Category,
    LedgerLine,
    LedgerTag,
    RateAccrual,
    Source,
    TotalAccrual,
)
from polycloud.state.repositories_runtime import AccountingStore, BudgetReader

log = logging.getLogger(__name__)
RUNNING = ("starting", "ready")
"""Replica states that are paid for."""
RevKey = tuple[str, int]


@dataclass(frozen=True)
class Declared:
    """What one pass needs to know of the declared fleet."""

    prices: PriceBook
    datasets: Mapping[str, Dataset]
    revisions: Mapping[RevKey, RevisionRecord]


def _labels(rev: RevisionRecord) -> dict[str, str]:
    metadata = rev.spec.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def tag_of(rev: RevisionRecord, cluster: str, provider: str, category: Category, source: Source) -> LedgerTag:
    """The ledger tag of a cost of revision `rev` on `cluster`."""
    return LedgerTag(
        workload=rev.workload,
        kind=rev.kind,
        revision=rev.number,
        cluster=cluster,
        provider=provider,
        category=category,
        source=source,
        labels=_labels(rev),
        project=rev.project,
    )


def replica_rates(replicas: Iterable[ReplicaRecord], declared: Declared) -> list[RateAccrual]:
    """Replica-seconds per second of each running (service, revision, cluster), and its dataset reads."""
    counts = Counter((r.workload, r.revision, r.cluster) for r in replicas if r.state in RUNNING)
    rates: list[RateAccrual] = []
    for (workload, number, cluster), count in sorted(counts.items()):
        rev = declared.revisions.get((workload, number))
        if rev is None or rev.kind != "Service":
            continue
        service = Service.model_validate(rev.spec)
        prices = declared.prices
        hourly = prices.hourly(rev.placement, cluster, service.spec.resources, spot=False)
        provider = prices.provider(cluster)
        if hourly is not None:
            tag = tag_of(rev, cluster, provider, "compute", "replicas")
            rates.append(RateAccrual(tag, float(count), hourly / 3600.0))
        rates += read_rates(rev, service, cluster, declared)
    return rates


def read_rates(rev: RevisionRecord, service: Service, cluster: str, declared: Declared) -> list[RateAccrual]:
    """A service's monthly dataset reads into an active cluster, prorated per second (modelled)."""
    roles = {a.get("role") for a in rev.placement if a.get("cluster") == cluster}
    if "active" not in roles:
        return []
    rates = []
    for read in service.spec.reads:
        dataset = declared.datasets.get(read.dataset)
        if dataset is None or dataset.spec.cluster == cluster:
            continue
        price = declared.prices.transfer(dataset.spec.cluster, cluster)
        if price is None:
            continue
        tag = tag_of(rev, cluster, declared.prices.provider(cluster), "egress", "dataset-reads")
        rates.append(RateAccrual(tag, read.gbPerMonth / SECONDS_PER_MONTH, price))
    return rates


def job_totals(runs: Iterable[JobRunRecord], declared: Declared, now: datetime) -> list[TotalAccrual]:
    """Running totals of each job run: compute per cluster, checkpoint egress, and dataset moves."""
    totals: list[TotalAccrual] = []
    for run in runs:
        rev = declared.revisions.get((run.job, run.revision))
        if rev is None or rev.kind != "Job":
            continue
        prices = declared.prices
        for cluster in sorted({a.cluster for a in run.attempts}):
            mine = [a for a in run.attempts if a.cluster == cluster]
            seconds = sum(
                max(0.0, ((a.ended_at or now) - a.started_at).total_seconds()) * a.nodes for a in mine
            )
            usd = sum(a.cost_usd(now) for a in mine)
            tag = tag_of(rev, cluster, prices.provider(cluster), "compute", "job-attempts")
            totals.append(TotalAccrual(tag, seconds, usd))
            totals += job_dataset_totals(rev, cluster, declared)
        if run.bytes_moved > 0 and run.cluster:
            tag = tag_of(rev, run.cluster, prices.provider(run.cluster), "egress", "checkpoints")
            totals.append(TotalAccrual(tag, run.bytes_moved / BYTES_PER_GB, run.egress_usd, any_cluster=True))
    return totals


def job_dataset_totals(rev: RevisionRecord, cluster: str, declared: Declared) -> list[TotalAccrual]:
    """A job's datasets, moved whole to `cluster` once (modelled, as in the plan)."""
    job = Job.model_validate(rev.spec)
    totals = []
    for read in job.spec.reads:
        dataset = declared.datasets.get(read.dataset)
        if dataset is None or dataset.spec.cluster == cluster:
            continue
        price = declared.prices.transfer(dataset.spec.cluster, cluster)
        if price is None:
            continue
        tag = tag_of(rev, cluster, declared.prices.provider(cluster), "egress", "job-datasets")
        totals.append(TotalAccrual(tag, dataset.spec.sizeGB, dataset.spec.sizeGB * price))
    return totals


def cost_line(line: LedgerLine) -> CostLine:
    """A ledger line as the pure cost functions take it."""
    t = line.tag
    return CostLine(
        workload=t.workload,
        kind=t.kind,
        cluster=t.cluster,
        provider=t.provider,
        category=t.category,
        usd=line.usd,
        quantity=line.quantity,
        source=t.source,
        revision=t.revision,
        labels=t.labels,
        project=t.project,
    )


def budget_alerts(store: BudgetReader, now: datetime) -> list[BudgetAlertInput]:
    """Every threshold each Policy budget has crossed this month (recorded ones included)."""
    policies = [Policy.model_validate(d.spec) for d in store.documents("Policy")]
    if not any(p.spec.budgets for p in policies):
        return []
    lines = [cost_line(line) for line in store.cost_lines(month_start(now))]
    alerts = []
    for s in budget_statuses(policies, lines, now):
        for threshold in crossed(s.percentUsed):
            message = (
                f"{s.label}={s.value} (policy {s.policy}) has spent ${s.spendUSD:,.2f} of ${s.limitUSD:,.2f} "
                f"in {s.month} ({s.percentUsed:.1f}%, past {threshold}%); "
                f"month-end forecast ${s.forecastUSD:,.2f}"
            )
            event = EventInput(
                level="error" if threshold >= 100 else "warning", reason="BudgetAlert", message=message
            )
            alerts.append(
                BudgetAlertInput(
                    s.policy, s.label, s.value, month_key(now), threshold, s.spendUSD, s.limitUSD, event
                )
            )
    return alerts


@dataclass
class Accountant:
    """One per control plane, run by `start()`. Several on one database never double-count."""

    store: AccountingStore
    catalog: Catalog
    interval_s: float = 2.0
    max_gap_s: float = 30.0
    """Seconds of unobserved time (no accountant ran) charged at most, at the rates seen after it."""
    budget_every_s: float = 10.0
    gate: Gate = always
    """Passes run only while this is open (only the holder of the leader lease accrues)."""
    _revisions: dict[RevKey, RevisionRecord] = field(default_factory=dict)
    _said: str = ""
    _checked: float = 0.0

    def __post_init__(self) -> None:
        self.loop = Loop(
            "accountant", self._pass, interval_s=self.interval_s, gate=self.gate, on_error=self._failed
        )

    def start(self) -> None:
        """Accrue every `interval_s` in a thread of its own until `stop()`; failures are logged."""
        self.loop.start()

    def stop(self) -> None:
        """Stop after the current pass (waits for it)."""
        self.loop.stop()

    def _pass(self) -> None:
        try:
            self.step()
            if time.monotonic() - self._checked >= self.budget_every_s:
                self.check_budgets()
                self._checked = time.monotonic()
        except ValidationError as e:  # a stored document this version cannot read
            self._failed(PermanentError(str(e)))
            return
        self._said = ""

    def _failed(self, error: PolycloudError) -> None:
        if str(error) != self._said:
            log.error("cost accounting pass failed: %s", error)
            self._said = str(error)

    def step(self) -> float:
        """One pass: accrue since the last one. Returns the seconds accrued."""
        replicas = self.store.replicas()
        runs = self.store.job_runs()
        declared = self._declared(replicas, runs)
        rates = replica_rates(replicas, declared)
        totals = job_totals(runs, declared, datetime.now(UTC))
        return self.store.accrue_cost(rates, totals, max_gap_s=self.max_gap_s)

    def check_budgets(self) -> None:
        """Record each budget threshold crossed this month, once, with a BudgetAlert event."""
        alerts = budget_alerts(self.store, datetime.now(UTC))
        if alerts:
            self.store.record_budget_alerts(alerts)

    def _declared(self, replicas: list[ReplicaRecord], runs: list[JobRunRecord]) -> Declared:
        docs = self.store.documents()
        clusters = {d.name: Cluster.model_validate(d.spec) for d in docs if d.kind == "Cluster"}
        datasets = {d.name: Dataset.model_validate(d.spec) for d in docs if d.kind == "Dataset"}
        wanted = {(r.workload, r.revision) for r in replicas if r.state in RUNNING}
        wanted |= {(r.job, r.revision) for r in runs}
        for key in wanted - self._revisions.keys():
            try:
                self._revisions[key] = self.store.revision(*key)
            except NotFoundError:
                continue
        return Declared(PriceBook(clusters, self.catalog), datasets, self._revisions)
