"""The accountant: observed replicas, job runs and declared reads become ledger entries and budget alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from polycloud.catalog import load_catalog
from polycloud.controller.accounting import Accountant
from polycloud.state import DocumentInput, ReplicaRecord, ReplicaState, Store, WorkloadInput, content_hash
from polycloud.state.job_records import AttemptInput

HOURLY = {"acme": 0.5, "bore": 2.0}
EGRESS = {"acme": 0.09, "bore": 0.05}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def doc(kind: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata = {"name": name, "labels": labels or {}}
    return {"apiVersion": "polycloud/v1", "kind": kind, "metadata": metadata, "spec": spec}


def site(name: str) -> DocumentInput:
    spec = {
        "provider": name,
        "region": "dc1",
        "driver": {"type": "local"},
        "location": {"lat": 50.0, "lon": 8.0},
        "instances": [{"name": "node", "vcpus": 8, "memoryGiB": 32, "hourlyUSD": HOURLY[name]}],
        "network": {"internetEgressUSDPerGB": EGRESS[name]},
    }
    body = doc("Cluster", name, spec)
    return DocumentInput("Cluster", name, body, content_hash(body))


def other(kind: str, name: str, spec: dict[str, Any]) -> DocumentInput:
    body = doc(kind, name, spec)
    return DocumentInput(kind, name, body, content_hash(body))


def workload(kind: str, name: str, spec: dict[str, Any], cluster: str, replicas: int) -> WorkloadInput:
    body = doc(kind, name, spec, labels={"team": "risk"})
    placement = [
        {"cluster": cluster, "role": "active", "replicas": replicas, "instanceType": "node"}
        | {"hourlyUSD": HOURLY[cluster], "spot": False, "costUSD": 0.0}
    ]
    return WorkloadInput(name, kind, body, content_hash(body), placement, "p1")  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}", clock=clock) as s:
        fraud = {
            "model": {"path": "/m.onnx"},
            "replicas": 4,
            "reads": [{"dataset": "logs", "gbPerMonth": 730}],
        }
        train = {"resources": {"vcpus": 4}, "nodes": 2, "hours": 1, "reads": [{"dataset": "logs"}]}
        budget = {"budgets": [{"label": "team", "value": "risk", "maxMonthlyUSD": 0.01}]}
        s.apply(
            workloads=[
                workload("Service", "fraud", fraud, "acme", 4),
                workload("Job", "train", train, "acme", 2),
            ],
            documents=[
                site("acme"),
                site("bore"),
                other("Dataset", "logs", {"cluster": "bore", "sizeGB": 20}),
                other("Policy", "limits", budget),
            ],
            author="test",
            message="",
        )
        yield s


def replica(index: int, state: ReplicaState) -> ReplicaRecord:
    return ReplicaRecord(f"fraud-acme-{index}", "fraud", "acme", "active", 1, None, None, state)


def by_source(store: Store) -> dict[str, tuple[float, float]]:
    return {line.tag.source: (line.quantity, line.usd) for line in store.cost_lines()}


def test_running_replicas_accrue_replica_seconds_at_the_planned_price(store: Store, clock: Clock) -> None:
    states: list[ReplicaState] = ["ready", "ready", "ready", "starting", "failed", "stopping"]
    store.replace_replicas([replica(i, s) for i, s in enumerate(states)])
    accountant = Accountant(store, load_catalog())
    accountant.step()
    clock.advance(10)
    assert accountant.step() == 10.0

    figures = by_source(store)
    assert figures["replicas"] == (pytest.approx(40.0), pytest.approx(40 / 3600 * 0.5))  # 4 paid × 10 s
    gb = 730 / (730 * 3600) * 10  # 730 GB a month, prorated over 10 s
    assert figures["dataset-reads"] == (pytest.approx(gb), pytest.approx(gb * 0.05))
    [compute] = [line for line in store.cost_lines() if line.tag.source == "replicas"]
    assert (compute.tag.provider, compute.tag.labels, compute.tag.project) == ("acme", {"team": "risk"}, "p1")


def test_job_attempts_and_checkpoints_accrue_what_was_recorded(store: Store, clock: Clock) -> None:
    run = store.job_run("train", 1, "acme")
    started = datetime.now(UTC) - timedelta(hours=1)
    store.add_job_attempt(run.id, AttemptInput(1, "acme", None, 0.5, 2, started))
    store.end_job_attempt(run.id, 1, state="preempted", run_state="running")
    store.add_job_attempt(run.id, AttemptInput(2, "bore", None, 2.0, 2, datetime.now(UTC), 3 * 10**9, 0.27))
    accountant = Accountant(store, load_catalog())
    accountant.step()
    accountant.step()  # totals are not counted twice

    lines = {(line.tag.source, line.tag.cluster): (line.quantity, line.usd) for line in store.cost_lines()}
    node_seconds, usd = lines[("job-attempts", "acme")]
    assert node_seconds == pytest.approx(2 * 3600, rel=1e-3) and usd == pytest.approx(2 * 0.5, rel=1e-3)
    assert lines[("checkpoints", "bore")] == (pytest.approx(3.0), pytest.approx(0.27))
    assert lines[("job-datasets", "acme")] == (pytest.approx(20.0), pytest.approx(20 * 0.05))
    assert ("job-datasets", "bore") not in lines  # the dataset lives there


def test_crossing_a_budget_records_each_threshold_once(store: Store, clock: Clock) -> None:
    store.replace_replicas([replica(0, "ready")])
    accountant = Accountant(store, load_catalog())
    accountant.step()
    clock.advance(30)
    accountant.step()  # 30 replica-seconds at $0.50/h = $0.00417: 41.7 % of $0.01
    accountant.check_budgets()
    assert [e for e in store.events() if e.reason == "BudgetAlert"] == []
    clock.advance(30)
    accountant.step()  # $0.00833: 83 %
    accountant.check_budgets()
    accountant.check_budgets()
    alerts = [e for e in store.events() if e.reason == "BudgetAlert"]
    assert sorted(e.message.split("past ")[1][:3] for e in alerts) == ["50%", "80%"]
    assert all("team=risk (policy limits)" in e.message and "forecast" in e.message for e in alerts)
