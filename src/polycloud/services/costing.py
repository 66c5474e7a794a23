"""Cost showback, chargeback, budgets and savings advice, from the ledger and the recorded fleet.

Each function reads the store and hands plain values to the pure `polycloud.cost` functions. `project`
limits what a project-scoped token sees to its own workloads' costs (None: the whole fleet).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from polycloud.catalog import Catalog
from polycloud.controller.accounting import RUNNING, cost_line
from polycloud.cost import (
    PriceBook,
    TokenLine,
    budget_statuses,
    chargeback,
    parse_since,
    report,
    token_report,
)
from polycloud.cost.advisor import Deployed, ranked, replanning, replicas_of_datasets, rightsizing, spot_jobs
from polycloud.cost.budgets import month_start
from polycloud.cost.report import CostLine, check_by, money
from polycloud.errors import PolycloudError
from polycloud.placement import Plan, plan_fleet
from polycloud.services.documents import documents_to_fleet
from polycloud.spec.models import Cluster, Dataset, Job, Policy, Service
from polycloud.state.loads import TokensServed
from polycloud.state.repositories import CostLineReader, WorkloadReader
from polycloud.state.repositories_runtime import BudgetReader
from polycloud.state.repositories_services import CostRepository

LOAD_MAX_AGE_S = 10.0
"""Gateway load reports older than this are not evidence of current load."""


def _now() -> datetime:
    return datetime.now(UTC)


def cost_lines(store: CostLineReader, since: datetime | None, project: str | None) -> list[CostLine]:
    """Accrued lines from `since`'s hour on, only `project`'s when given."""
    lines = [cost_line(line) for line in store.cost_lines(since)]
    return [line for line in lines if project is None or line.project == project]


def cost_report(store: CostRepository, by: str, since: str | None, project: str | None) -> dict[str, Any]:
    """`{"rows": [{"key", "computeUSD", "egressUSD", "totalUSD"}], "totalUSD"}` of the accrued cost, and
    `"tokens"` (`polycloud.cost.report.token_report`) when LLM services served tokens in the window."""
    check_by(by)
    start = parse_since(since, _now())
    ledger = [cost_line(line) for line in store.cost_lines(start)]
    kept = [line for line in ledger if project is None or line.project == project]
    data = report(kept, by)
    served = store.tokens_served(start)
    if served:
        tokens = token_report(kept, _token_lines(store, ledger, served, project), by)
        if tokens is not None:
            data["tokens"] = tokens
    return data


def _token_lines(
    store: WorkloadReader, ledger: list[CostLine], served: list[TokensServed], project: str | None
) -> list[TokenLine]:
    """The served tokens a caller of `project` may see (all for None), with each service's labels.

    A service's project and labels are the ledger's (as they were when it accrued), else the current
    workload's; a service known to neither is shown to fleet-wide callers only.
    """
    projects: dict[str, str | None] = {}
    labels: dict[str, dict[str, str]] = {}
    for w in store.current():
        if w.kind == "Service":
            projects[w.name] = w.project
            labels[w.name] = _spec_labels(w.spec)
    for line in ledger:
        if line.kind == "Service":
            projects[line.workload] = line.project
    return [
        TokenLine(t.service, t.cluster, t.prompt, t.completion, labels.get(t.service, {}))
        for t in served
        if project is None or (t.service in projects and projects[t.service] == project)
    ]


def _spec_labels(spec: dict[str, Any]) -> dict[str, str]:
    metadata = spec.get("metadata")
    found = metadata.get("labels") if isinstance(metadata, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def cost_export(store: CostLineReader, label: str, since: str | None, project: str | None) -> dict[str, Any]:
    """Chargeback rows per (label value, workload, cluster) and the period they cover."""
    check_by(label)
    now = _now()
    start = parse_since(since, now)
    lines = store.cost_lines(start)
    kept = [cost_line(line) for line in lines if project is None or line.tag.project == project]
    first = start or min((line.first_hour for line in lines), default=now)
    return {
        "label": label,
        "periodStart": first.isoformat(),
        "periodEnd": now.isoformat(),
        "rows": chargeback(kept, label, first, now),
    }


def budgets(store: BudgetReader, project: str | None) -> dict[str, Any]:
    """Every Policy budget this month: spend, forecast, % used and alert level."""
    now = _now()
    policies = [Policy.model_validate(d.spec) for d in store.documents("Policy")]
    lines = cost_lines(store, month_start(now), project)
    return {"budgets": [s.to_json() for s in budget_statuses(policies, lines, now)]}


def advice(store: CostRepository, catalog: Catalog, project: str | None) -> dict[str, Any]:
    """Savings with dollar figures and the command that makes each, biggest first."""
    docs = store.documents()
    clusters = {d.name: Cluster.model_validate(d.spec) for d in docs if d.kind == "Cluster"}
    datasets = {d.name: Dataset.model_validate(d.spec) for d in docs if d.kind == "Dataset"}
    current = store.current()
    deployed = [_deployed(w.kind, w.spec, w.placement) for w in current if project in (None, w.project)]
    prices = PriceBook(clusters, catalog)
    load: dict[tuple[str, str], float] = defaultdict(float)
    for row in store.load(LOAD_MAX_AGE_S):
        load[(row.service, row.cluster)] += row.in_flight_mean
    running = Counter((r.workload, r.cluster) for r in store.replicas() if r.state in RUNNING)
    documents = [d.spec for d in docs] + [w.spec for w in current]
    plan, note = _replan(documents, catalog)
    found = ranked(
        rightsizing(deployed, dict(load), running),
        replanning(deployed, plan) if plan is not None else [],
        spot_jobs(deployed, prices),
        replicas_of_datasets(deployed, datasets, prices),
    )
    items = [a.to_json() for a in found]
    return {
        "advice": items,
        "monthlySavingUSD": money(sum(a.savingUSD for a in found if a.per == "month")),
        "perRunSavingUSD": money(sum(a.savingUSD for a in found if a.per == "run")),
        "notes": [note] if note else [],
    }


def _deployed(kind: str, spec: dict[str, Any], placement: list[dict[str, Any]]) -> Deployed:
    workload: Service | Job = Service.model_validate(spec) if kind == "Service" else Job.model_validate(spec)
    return Deployed(workload, placement)


def _replan(documents: list[dict[str, Any]], catalog: Catalog) -> tuple[Plan | None, str]:
    """A plan of the recorded fleet made now, or why there is none."""
    try:
        return plan_fleet(documents_to_fleet(documents, catalog), catalog), ""
    except (PolycloudError, ValidationError) as e:
        return (
            None,
            f"could not re-plan the recorded fleet, so no re-placement advice: {str(e).splitlines()[0]}",
        )
