"""Aiming a drill: the cluster and service checked against the status, and a request fitting the model."""

from __future__ import annotations

from typing import Any

import pytest

from polycloud.drills.running import FAULT_KIND, DrillPlan
from polycloud.drills.target import infer_body, resolve_target
from polycloud.errors import UserError


def service(name: str, *clusters: tuple[str, int]) -> dict[str, Any]:
    return {
        "name": name,
        "clusters": [
            {"cluster": c, "replicas": [{"id": f"{name}-{c}-{i}"} for i in range(n)]} for c, n in clusters
        ],
    }


STATUS = {
    "gateway": {"url": "http://gw"},
    "services": [
        service("empty", ("aws-use1", 0)),
        service("fraud", ("aws-use1", 1), ("gcp-euw1", 1)),
        service("chat", ("gcp-euw1", 2)),
    ],
}


def test_the_default_service_is_the_first_with_replicas_on_the_cluster() -> None:
    target = resolve_target(STATUS, "aws-use1", None)
    assert (target.cluster, target.service) == ("aws-use1", "fraud")
    assert target.clusters == ("aws-use1", "gcp-euw1")
    assert resolve_target(STATUS, "gcp-euw1", "chat").service == "chat"


@pytest.mark.parametrize(
    ("cluster", "name", "expected"),
    [
        ("azure", None, ["'azure'", "aws-use1", "gcp-euw1"]),
        ("aws-use1", "nope", ["'nope'", "chat", "empty", "fraud"]),
        ("aws-use1", "chat", ["chat", "gcp-euw1"]),
    ],
)
def test_bad_targets_name_the_known_ones(cluster: str, name: str | None, expected: list[str]) -> None:
    with pytest.raises(UserError) as caught:
        resolve_target(STATUS, cluster, name)
    assert all(word in str(caught.value) for word in expected)


def test_the_request_fits_the_model_metadata() -> None:
    meta = {
        "name": "m",
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "ids", "datatype": "INT64", "shape": [2, -1]},
        ],
    }
    assert infer_body(meta) == {
        "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4},
            {"name": "ids", "shape": [2, 1], "datatype": "INT64", "data": [0, 0]},
        ]
    }
    with pytest.raises(UserError):
        infer_body({"name": "m", "inputs": []})


def test_plans_fill_default_times_and_refuse_bad_input() -> None:
    plan = DrillPlan.create("outage", "a", duration_s=9)
    assert (plan.fault_at_s, plan.clear_at_s, plan.rps) == (3.0, 6.0, 100.0)
    ends = {"forSeconds": 13.0}  # cleared at 6 s by the drill, or 10 s later by itself
    brownout = DrillPlan.create("brownout", "a", latency_ms=50, duration_s=10, fault_at_s=3, clear_at_s=6)
    assert brownout.fault_fields() == {"delayMs": 50, **ends}
    errors = DrillPlan.create("errors", "a", error_rate=0.5, duration_s=10, fault_at_s=3, clear_at_s=6)
    assert errors.fault_fields() == {"errorRate": 0.5, **ends}
    blackhole = DrillPlan.create("blackhole", "a", duration_s=10, fault_at_s=3, clear_at_s=6)
    assert blackhole.fault_fields() == ends
    assert FAULT_KIND["blackhole"] == "freeze"
    for bad in (
        {"rps": 0},
        {"fault_at_s": 8.0, "clear_at_s": 7.0},
        {"clear_at_s": 11.0},
        {"fault_at_s": -1.0},
    ):
        with pytest.raises(UserError):
            DrillPlan.create("outage", "a", **bad)
    with pytest.raises(UserError):
        DrillPlan.create("brownout", "a")
    with pytest.raises(UserError):
        DrillPlan.create("errors", "a", error_rate=1.5)
