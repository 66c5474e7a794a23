"""Autoscaling and burst on a fake clock: up at once, down after the window, clamped, and burst to 0."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from polycloud.controller.autoscaling import Autoscaler
from polycloud.drivers.base import ReplicaStatus
from polycloud.exchange import LoadReport
from polycloud.state import WorkloadState

SCALING = {"minReplicas": 1, "maxReplicas": 5, "targetInFlight": 4}


def workload(placement: list[dict[str, Any]], autoscaling: dict[str, Any] | None = None) -> WorkloadState:
    inner: dict[str, Any] = {"model": "m.onnx"}
    if autoscaling is not None:
        inner["autoscaling"] = autoscaling
    spec = {"kind": "Service", "metadata": {"name": "svc"}, "spec": inner}
    return WorkloadState("svc", "Service", 1, spec, placement, "0" * 64, None, datetime.now(UTC))


def scaled(replicas: int = 2) -> WorkloadState:
    return workload([{"cluster": "east", "role": "active", "replicas": replicas}], SCALING)


def bursting(autoscaling: dict[str, Any] | None = None) -> WorkloadState:
    placement = [
        {"cluster": "east", "role": "active", "replicas": 2},
        {"cluster": "west", "role": "burst", "replicas": 3},
    ]
    return workload(placement, autoscaling)


def load(cluster: str, *means: float) -> list[LoadReport]:
    """One row per gateway for `cluster`, with these mean in-flight figures."""
    return [
        LoadReport("svc", cluster, m, m, 10.0, 0.0, 5.0, gateway_id=f"gw-{i}") for i, m in enumerate(means)
    ]


def ready(cluster: str, n: int) -> dict[str, list[ReplicaStatus]]:
    reps = [ReplicaStatus(f"svc-{cluster}-{i}", "svc", cluster, 1, "active", "h", "ready") for i in range(n)]
    return {cluster: reps}


def test_scales_up_at_once_summing_every_gateway() -> None:
    a = Autoscaler(window_s=60.0)
    overrides, events = a.decide([scaled()], {}, load("east", 7.0, 6.0), 0.0)  # 13 in flight / 4 → 4
    assert overrides == {("svc", "east"): 4}
    assert [(e.reason, e.workload, e.cluster) for e in events] == [("ScaledUp", "svc", "east")]
    assert a.decide([scaled()], {}, load("east", 13.0), 1.0) == ({("svc", "east"): 4}, [])


def test_scales_down_only_after_the_lower_figure_held_for_the_window() -> None:
    a = Autoscaler(window_s=60.0)
    a.decide([scaled()], {}, load("east", 16.0), 0.0)  # 4
    assert a.decide([scaled()], {}, load("east", 4.0), 10.0) == ({("svc", "east"): 4}, [])  # wants 1
    assert a.decide([scaled()], {}, load("east", 8.0), 40.0)[0] == {("svc", "east"): 4}  # wants 2
    overrides, events = a.decide([scaled()], {}, load("east", 4.0), 70.0)
    assert overrides == {("svc", "east"): 2}  # the highest figure of the window
    assert [e.reason for e in events] == ["ScaledDown"]


def test_a_higher_figure_or_a_missing_report_restarts_the_wait() -> None:
    a = Autoscaler(window_s=60.0)
    a.decide([scaled()], {}, load("east", 16.0), 0.0)
    a.decide([scaled()], {}, load("east", 4.0), 10.0)
    a.decide([scaled()], {}, load("east", 16.0), 30.0)  # back up: the wait starts over
    assert a.decide([scaled()], {}, load("east", 4.0), 71.0)[0] == {("svc", "east"): 4}
    assert a.decide([scaled()], {}, [], 100.0) == ({("svc", "east"): 4}, [])  # missing: no change
    assert a.decide([scaled()], {}, load("east", 4.0), 140.0)[0] == {("svc", "east"): 4}
    assert a.decide([scaled()], {}, load("east", 4.0), 200.0)[0] == {("svc", "east"): 1}


def test_counts_are_clamped_to_min_and_max() -> None:
    a = Autoscaler(window_s=0.0)
    assert a.decide([scaled()], {}, load("east", 400.0), 0.0)[0] == {("svc", "east"): 5}
    a.decide([scaled()], {}, load("east", 0.0), 1.0)
    assert a.decide([scaled()], {}, load("east", 0.0), 2.0)[0] == {("svc", "east"): 1}
    # a placement outside the bounds starts clamped
    assert Autoscaler().decide([scaled(9)], {}, load("east", 20.0), 0.0)[0] == {("svc", "east"): 5}


def test_no_autoscaling_block_or_no_report_means_no_override() -> None:
    plain = workload([{"cluster": "east", "role": "active", "replicas": 2}])
    assert Autoscaler().decide([plain], {}, load("east", 100.0), 0.0) == ({}, [])
    assert Autoscaler().decide([scaled()], {}, [], 0.0) == ({}, [])
    assert Autoscaler().decide([scaled()], {}, load("west", 100.0), 0.0) == ({}, [])  # another cluster


def test_burst_starts_over_the_target_and_ends_after_the_window() -> None:
    a = Autoscaler(window_s=60.0)
    assert a.decide([bursting()], ready("east", 2), [], 0.0) == ({("svc", "west"): 0}, [])  # baseline
    assert a.decide([bursting()], ready("east", 2), load("east", 8.0), 1.0)[0] == {("svc", "west"): 0}
    overrides, events = a.decide([bursting()], ready("east", 2), load("east", 13.0), 2.0)  # 5 over 8
    assert overrides == {("svc", "west"): 2} and [e.reason for e in events] == ["BurstStarted"]
    # overflow moves to the burst cluster: the total still calls for the same burst
    rows = load("east", 8.0) + load("west", 5.0)
    assert a.decide([bursting()], ready("east", 2), rows, 3.0) == ({("svc", "west"): 2}, [])
    capped = load("east", 8.0) + load("west", 100.0)
    assert a.decide([bursting()], ready("east", 2), capped, 4.0)[0] == {("svc", "west"): 3}  # `replicas`
    quiet = load("east", 3.0) + load("west", 0.0)
    assert a.decide([bursting()], ready("east", 2), quiet, 10.0)[0] == {("svc", "west"): 3}
    overrides, events = a.decide([bursting()], ready("east", 2), quiet, 70.0)
    assert overrides == {("svc", "west"): 0} and [e.reason for e in events] == ["BurstEnded"]


def test_burst_uses_the_autoscaling_target_and_max() -> None:
    a = Autoscaler(window_s=60.0)
    spec = {"minReplicas": 2, "maxReplicas": 4, "targetInFlight": 2}
    overrides, events = a.decide([bursting(spec)], ready("east", 2), load("east", 100.0), 0.0)
    assert overrides == {("svc", "east"): 4, ("svc", "west"): 4}
    assert sorted(e.reason for e in events) == ["BurstStarted", "ScaledUp"]


def test_burst_holds_without_fresh_primary_reports_and_forgets_removed_services() -> None:
    a = Autoscaler(window_s=0.0)
    a.decide([bursting()], ready("east", 2), load("east", 20.0), 0.0)
    assert a.decide([bursting()], ready("east", 2), load("west", 0.0), 1.0)[0] == {("svc", "west"): 3}
    assert a.decide([], {}, [], 2.0) == ({}, [])
    assert a.groups == {}
