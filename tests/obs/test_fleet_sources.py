"""Federation, probes and drift against a real replica served in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families
from tests.gateway.support import ServerThread
from tests.support import build_model

from polycloud.obs.drift import DriftWatch
from polycloud.obs.federation import Source, federate
from polycloud.obs.probes import Prober, fitting_request
from polycloud.serving.app import Replica, ServedModel, create_app
from polycloud.serving.faults import Faults, FaultSettings
from polycloud.serving.metrics import ReplicaLabels, ReplicaMetrics
from polycloud.serving.model import load_model
from polycloud.state import ReplicaRecord

BODY = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Replica, str]]:
    model = load_model(build_model(tmp_path / "tiny.onnx"), None)
    replica = Replica(
        ServedModel("m", "3", model),
        Faults(FaultSettings(0.0, 0.0)),
        ReplicaMetrics(ReplicaLabels("m", "a", "3")),
    )
    server = ServerThread(create_app(replica)).start()
    try:
        yield replica, server.url
    finally:
        server.stop()
        replica.close()


def _record(endpoint: str, state: str = "ready") -> ReplicaRecord:
    return ReplicaRecord(
        id="m-a-0",
        workload="m",
        cluster="a",
        role="active",
        revision=3,
        endpoint=endpoint,
        pid=None,
        state=state,  # type: ignore[arg-type]
        message="",
        updated_at=datetime.now(UTC),
    )


def test_the_fleet_metrics_carry_every_sources_labels(served: tuple[Replica, str]) -> None:
    _, url = served
    assert httpx.post(f"{url}/v2/models/m/infer", json=BODY).status_code == 200
    own = CollectorRegistry()
    Gauge("polycloud_controller_replicas_ready", "r", ["service", "cluster", "role"], registry=own).labels(
        "m", "a", "active"
    ).set(1)
    sources = [
        Source("replica/m-a-0", f"{url}/metrics", {"replica": "m-a-0", "role": "active", "cluster": "a"}),
        Source("gateway", "http://127.0.0.1:9/metrics", {}),  # nothing listens there
    ]
    text = asyncio.run(federate([own], sources, {"a": ("aws", "us-east-1")})).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    requests = [
        (labels, v) for (name, labels), v in samples.items() if name == "polycloud_replica_requests_total"
    ]
    assert len(requests) == 1
    labels = dict(requests[0][0])
    assert labels["provider"] == "aws" and labels["region"] == "us-east-1" and labels["replica"] == "m-a-0"
    assert labels["revision"] == "3" and labels["role"] == "active" and requests[0][1] == 1
    ready = [dict(k[1]) for k in samples if k[0] == "polycloud_controller_replicas_ready"]
    assert ready == [
        {"service": "m", "cluster": "a", "role": "active", "provider": "aws", "region": "us-east-1"}
    ]
    up = {dict(k[1])["source"]: v for k, v in samples.items() if k[0] == "polycloud_federation_up"}
    assert up == {"replica/m-a-0": 1.0, "gateway": 0.0}
    assert not any(name.endswith("_created") for name, _ in samples)


def test_a_probe_is_a_real_inference(served: tuple[Replica, str]) -> None:
    replica, url = served
    prober = Prober()
    try:
        [target] = prober.targets([_record(url), _record("", "starting")])
        result = prober.probe(target)
        assert result.ok and result.ms > 0 and result.detail == ""
        assert replica.predictions.snapshot()[1] >= 0
        down = prober.probe(_record("http://127.0.0.1:9"))
        assert not down.ok and "ConnectError" in down.detail
    finally:
        prober.close()


def test_fitting_requests_follow_the_metadata() -> None:
    metadata = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "t", "datatype": "BYTES", "shape": [2]},
        ]
    }
    assert fitting_request(metadata) == {
        "inputs": [
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]},
            {"name": "t", "shape": [2], "datatype": "BYTES", "data": ["", ""]},
        ]
    }
    with pytest.raises(ValueError, match="no inputs"):
        fitting_request({})


def test_drift_compares_recent_predictions_with_the_reference(served: tuple[Replica, str]) -> None:
    _, url = served
    watch = DriftWatch(reference_size=40, current_size=40)

    def infer(data: list[float], times: int) -> None:
        body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": data}]}
        with httpx.Client() as client:
            for _ in range(times):
                assert client.post(f"{url}/v2/models/m/infer", json=body).status_code == 200

    try:
        for i in range(24):  # 96 inferences, 1 in 4 sampled, 2 output values each: 48 values
            infer([float(i % 6), 1, 0, 0], 4)
        assert watch.read([_record(url)]) == []  # 40 make the reference, 8 are not enough to compare
        infer([0, 0, 0, 0], 96)  # 48 more values, every one 0: the outputs shifted
        [reading] = watch.read([_record(url)])
        assert reading.psi > 0.25 and (reading.reference, reading.service) == (40, "m")
    finally:
        watch.close()
