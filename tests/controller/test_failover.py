"""Active-passive failover on a fake clock: scale the standby up after the grace, back after stability."""

from __future__ import annotations

from datetime import UTC, datetime

from polycloud.controller.failover import Failover
from polycloud.drivers.base import ReplicaStatus
from polycloud.state import WorkloadState


def workload() -> WorkloadState:
    placement = [
        {"cluster": "east", "role": "active", "replicas": 3},
        {"cluster": "west", "role": "standby", "replicas": 1},
    ]
    return WorkloadState("svc", "Service", 1, {}, placement, "0" * 64, None, datetime.now(UTC))


def ready(n: int) -> dict[str, list[ReplicaStatus]]:
    reps = [ReplicaStatus(f"svc-east-{i}", "svc", "east", 1, "active", "h", "ready") for i in range(n)]
    return {"east": reps, "west": []}


def test_fails_over_after_grace_and_back_after_stable_window() -> None:
    f = Failover(grace_s=2.0, stabilise_s=30.0)
    assert f.decide([workload()], ready(3), 0.0) == ({}, [])
    assert f.decide([workload()], ready(0), 1.0)[0] == {}  # within the grace
    overrides, events = f.decide([workload()], ready(0), 3.5)
    assert overrides == {("svc", "west"): 3} and events[0].reason == "FailoverStarted"
    assert f.decide([workload()], ready(3), 10.0)[0] == {("svc", "west"): 3}  # not yet stable
    assert f.decide([workload()], ready(1), 20.0)[0] == {("svc", "west"): 3}  # flapping resets the window
    assert f.decide([workload()], ready(3), 25.0)[0] == {("svc", "west"): 3}
    overrides, events = f.decide([workload()], ready(3), 56.0)
    assert overrides == {} and events[0].reason == "FailbackCompleted"


def test_unreachable_primary_cluster_counts_as_down() -> None:
    f = Failover(grace_s=0.0)
    overrides, _ = f.decide([workload()], {"west": []}, 0.0)
    assert overrides == {("svc", "west"): 3}
