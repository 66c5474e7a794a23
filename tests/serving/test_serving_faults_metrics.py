"""Fault hooks (simulated delay, injected errors, the admin API) and the replica's Prometheus metrics."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from polycloud.serving.faults import Faults, FaultSettings, InvalidFaults

Client = Any
"""conftest.Client: `.get(path)`, `.post(path, json=..., content=...)` -> httpx.Response."""
MakeClient = Callable[[Any], Client]
MakeReplica = Callable[..., Any]

INFER = "/v2/models/species/infer"
REQUEST = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
LABELS = {"service": "species", "cluster": "test-a", "revision": "3"}


def samples(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`, keyed by name and sorted labels."""
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def key(name: str, **extra: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted({**LABELS, **extra}.items()))


def test_inference_requests_are_counted_by_code(client: Client) -> None:
    client.post(INFER, json=REQUEST)
    client.post(INFER, json=REQUEST)
    client.post(INFER, json={"inputs": []})
    client.get("/v2/health/ready")  # health probes are not counted
    found = samples(client)
    assert found[key("polycloud_replica_requests_total", code="200")] == 2
    assert found[key("polycloud_replica_requests_total", code="400")] == 1
    assert found[key("polycloud_replica_request_duration_seconds_count")] == 3
    assert found[key("polycloud_replica_inflight_requests")] == 0


def test_each_replica_has_its_own_registry(
    make_replica: MakeReplica, make_client: MakeClient, iris_path: Path
) -> None:
    first = make_client(make_replica(iris_path, name="species"))
    second = make_client(make_replica(iris_path, name="species"))
    first.post(INFER, json=REQUEST)
    assert samples(first)[key("polycloud_replica_requests_total", code="200")] == 1
    assert key("polycloud_replica_requests_total", code="200") not in samples(second)


def test_error_rate_one_fails_every_inference(
    make_replica: MakeReplica, make_client: MakeClient, iris_path: Path
) -> None:
    client = make_client(make_replica(iris_path, name="species", error_rate=1.0))
    answer = client.post(INFER, json=REQUEST)
    assert answer.status_code == 500 and "injected" in answer.json()["error"]
    assert client.get("/v2/models/species").status_code == 200  # only inference fails
    assert samples(client)[key("polycloud_replica_requests_total", code="500")] == 1


def test_admin_api_changes_the_extra_faults(client: Client) -> None:
    assert client.get("/_polycloud/faults").json() == {
        "delayMs": 0.0,
        "errorRate": 0.0,
        "baseDelayMs": 0.0,
        "baseErrorRate": 0.0,
    }
    changed = client.post("/_polycloud/faults", json={"errorRate": 1.0})
    assert changed.status_code == 200 and changed.json()["errorRate"] == 1.0
    assert client.post(INFER, json=REQUEST).status_code == 500
    client.post("/_polycloud/faults", json={"delayMs": 0, "errorRate": 0})
    assert client.post(INFER, json=REQUEST).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"delayMs": -1}, {"errorRate": 1.5}, {"errorRate": "high"}, {"delayMs": True}, {"jitter": 3}, [1]],
)
def test_admin_api_refuses_bad_settings(client: Client, body: Any) -> None:
    answer = client.post("/_polycloud/faults", json=body)
    assert answer.status_code == 400 and answer.json()["error"]
    assert client.get("/_polycloud/faults").json()["delayMs"] == 0.0


def test_admin_api_refuses_malformed_json(client: Client) -> None:
    assert client.post("/_polycloud/faults", content=b"{").status_code == 400


def test_delay_is_added_to_every_v2_answer_only(
    make_replica: MakeReplica, make_client: MakeClient, iris_path: Path
) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    replica = make_replica(iris_path, name="species", delay_ms=40.0)
    replica.sleep = record
    client = make_client(replica)
    client.post("/_polycloud/faults", json={"delayMs": 10})
    client.get("/v2/health/live")
    client.post(INFER, json=REQUEST)
    client.get("/metrics")
    client.get("/_polycloud/faults")
    assert slept == [pytest.approx(0.05), pytest.approx(0.05)]


def test_faults_combine_base_and_extra() -> None:
    faults = Faults(FaultSettings(delay_ms=20.0, error_rate=0.0), random.Random(1))
    faults.update({"delayMs": 30.0})
    assert faults.delay_s == pytest.approx(0.05)
    assert not any(faults.should_fail() for _ in range(100))
    faults.update({"errorRate": 1.0})
    assert all(faults.should_fail() for _ in range(100))
    assert faults.extra == FaultSettings(delay_ms=30.0, error_rate=1.0)


def test_error_rate_is_a_fraction() -> None:
    faults = Faults(FaultSettings(error_rate=0.25), random.Random(42))
    failures = sum(faults.should_fail() for _ in range(4000))
    assert 800 < failures < 1200


def test_fault_settings_are_validated() -> None:
    with pytest.raises(InvalidFaults):
        FaultSettings(delay_ms=float("nan"))
    with pytest.raises(InvalidFaults):
        FaultSettings(error_rate=-0.1)
