"""The job controller's pure decisions: what an ended attempt means, and where the next one runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from polycloud.catalog import load_catalog
from polycloud.controller.jobdecisions import next_cluster, outcome, ranked_choices
from polycloud.drivers.jobs import JobProcessState, JobStatus
from polycloud.spec.models import Cluster, Job
from polycloud.state.job_records import AttemptRecord, AttemptState, JobRunRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def run_with(*states: AttemptState) -> JobRunRecord:
    attempts = tuple(
        AttemptRecord(i + 1, "a", None, s, 1.0, 1, NOW, NOW, None, "") for i, s in enumerate(states)
    )
    return JobRunRecord(1, "j", 1, "running", "a", 0, 0.0, "", NOW, NOW, attempts)


def ended(state: JobProcessState) -> JobStatus:
    return JobStatus("j", "a", 1, 1, state, exit_code=1, message="exit status 1")


@pytest.mark.parametrize(
    ("earlier", "state", "max_restarts", "expected"),
    [
        ((), "succeeded", 0, ("succeeded", "succeeded")),
        ((), "cancelled", 3, ("cancelled", "cancelled")),
        ((), "stopped", 0, ("stopped", "pending")),  # a shutdown is no restart
        ((), "preempted", 1, ("preempted", "pending")),
        (("preempted",), "failed", 1, ("failed", "failed")),  # preemptions use restarts up too
        (("stopped", "stopped"), "preempted", 1, ("preempted", "pending")),
        ((), "failed", 0, ("failed", "failed")),
    ],
)
def test_outcome_of_an_ended_attempt(
    earlier: tuple[AttemptState, ...], state: JobProcessState, max_restarts: int, expected: tuple[str, str]
) -> None:
    result = outcome(run_with(*earlier, "running"), ended(state), max_restarts)
    assert (result.attempt, result.run) == expected


def test_next_cluster_moves_only_when_asked_and_possible() -> None:
    ranked = ["a", "b", "c"]
    assert next_cluster("same-cluster", "a", "preempted", ranked) == "a"
    assert next_cluster("next-cheapest", "a", "preempted", ranked) == "b"
    assert next_cluster("next-cheapest", "b", "failed", ranked) == "a"
    assert next_cluster("next-cheapest", "a", "stopped", ranked) == "a"  # resumed where it was stopped
    assert next_cluster("next-cheapest", "a", "preempted", ["a"]) == "a"  # nowhere else to go


def test_ranking_prices_clusters_as_the_planner_does() -> None:
    def site(name: str, spot: float, egress: float) -> Cluster:
        return Cluster.model_validate(
            {
                "apiVersion": "polycloud/v1",
                "kind": "Cluster",
                "metadata": {"name": name},
                "spec": {
                    "provider": name,
                    "region": "dc",
                    "location": {"lat": 0, "lon": 0},
                    "instances": [{"name": "n", "vcpus": 4, "hourlyUSD": 1.0, "spotHourlyUSD": spot}],
                    "network": {"internetEgressUSDPerGB": egress},
                },
            }
        )

    job = Job.model_validate(
        {
            "apiVersion": "polycloud/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"hours": 10, "nodes": 2, "spot": True, "resources": {"vcpus": 2}},
        }
    )
    clusters = {"x": site("x", 0.3, 0), "y": site("y", 0.2, 0), "z": site("z", 0.25, 0)}
    ranked = ranked_choices(job, clusters, {}, {}, load_catalog())
    assert [(c.cluster, c.hourly_usd, c.cost) for c in ranked] == [
        ("y", 0.2, 4.0),
        ("z", 0.25, 5.0),
        ("x", 0.3, 6.0),
    ]
