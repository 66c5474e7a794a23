"""The controller's metrics: replicas desired and ready, failovers, failbacks, rollouts."""

from __future__ import annotations

from prometheus_client import generate_latest

from polycloud.controller.desired import DesiredState, ReplicaGroup, ReplicaTemplate
from polycloud.controller.metrics import ControllerMetrics
from polycloud.drivers.base import ReplicaStatus
from polycloud.state import EventInput


def _value(metrics: ControllerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _status(index: int, state: str) -> ReplicaStatus:
    return ReplicaStatus(f"s-a-{index}", "s", "a", 1, "active", "h", state)  # type: ignore[arg-type]


def _desired(count: int) -> DesiredState:
    template = ReplicaTemplate("s", "a", 1, "active", "m.onnx", None, {}, 0.0, "h")
    return DesiredState(groups={("s", "a"): ReplicaGroup("s", "a", count, template)})


def test_desired_and_ready_follow_each_pass() -> None:
    metrics = ControllerMetrics()
    metrics.observed(_desired(3), {"a": [_status(0, "ready"), _status(1, "starting")]})
    labels = {"service": "s", "cluster": "a", "role": "active"}
    assert _value(metrics, "polycloud_controller_replicas_desired", **labels) == 3
    assert _value(metrics, "polycloud_controller_replicas_ready", **labels) == 1
    metrics.observed(DesiredState(), {})
    assert _value(metrics, "polycloud_controller_replicas_desired", **labels) is None  # gone with its group


def test_failovers_and_rollouts_are_counted_from_events() -> None:
    metrics = ControllerMetrics()
    metrics.events(
        [
            EventInput("warning", "FailoverStarted", "m", workload="s", cluster="a"),
            EventInput("info", "FailbackCompleted", "m", workload="s", cluster="a"),
            EventInput("warning", "RolloutRolledBack", "m", workload="s"),
            EventInput("info", "ReplicaStarted", "m", workload="s", cluster="a"),
        ]
    )
    assert _value(metrics, "polycloud_controller_failovers_total", service="s", cluster="a") == 1
    assert _value(metrics, "polycloud_controller_failbacks_total", service="s", cluster="a") == 1
    assert _value(metrics, "polycloud_controller_rollouts_total", service="s", outcome="rolled-back") == 1
    assert b"polycloud_controller_reconcile_duration_seconds_bucket" in generate_latest(metrics.registry)
