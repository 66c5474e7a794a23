"""Observability as a user sees it: an outage drill on an active-passive service becomes a failover
incident; `polycloud slo` shows traffic and probes; the control plane's `/metrics` covers the fleet with
provider and region labels; one request's trace spans the gateway and the replica."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.e2e.conftest import IRIS_MODEL, Polycloud
from tests.e2e.fleets import Fleet

from polycloud.telemetry.tracing import read_spans

pytestmark = pytest.mark.e2e

CLUSTERS = ("acme", "borealis")


def _write_fleet(root: Path) -> Path:
    model = Path(shutil.copy(IRIS_MODEL, root / "iris.onnx"))
    documents = Fleet(root, model, CLUSTERS, ()).documents()
    documents.append(
        {
            "apiVersion": "polycloud/v1",
            "kind": "Service",
            "metadata": {"name": "iris"},
            "spec": {
                "model": {"path": str(model)},
                "resources": {"vcpus": 1, "memoryGiB": 1},
                "replicas": 1,
                "pattern": "active-passive",
                "placement": {"clusters": list(CLUSTERS)},
                "slo": {"availability": 0.99, "p99Ms": 500, "windowDays": 7},
            },
        }
    )
    path = root / "fleet.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def _ready_everywhere(status: dict[str, Any]) -> bool:
    [service] = status["services"]
    return all(any(r["state"] == "ready" for r in c["replicas"]) for c in service["clusters"])


def test_a_drilled_outage_is_an_incident_with_slo_metrics_and_traces(
    polycloud: Polycloud, tmp_path: Path
) -> None:
    polycloud.env["POLYCLOUD_PROBE_INTERVAL_S"] = "1"
    polycloud.env["POLYCLOUD_REQUEST_LOG_SAMPLE"] = "1"  # every request logged, to find ours
    polycloud.ok("apply", _write_fleet(tmp_path), "--yes")
    polycloud.eventually(lambda: _ready_everywhere(polycloud.api_status()), "a ready replica in each cluster")

    drill = json.loads(
        polycloud.ok("drill", "outage", "acme", "--rps", "20", "--duration", "15", "--json").stdout
    )
    assert drill["failed"] == 0, drill["statusCodes"]

    def failover() -> dict[str, Any] | None:
        found = json.loads(polycloud.ok("incidents", "--json").stdout)["incidents"]
        return next((i for i in found if i["kind"] == "failover"), None)

    incident = polycloud.eventually(failover, "a failover incident")
    reasons = [e["reason"] for e in incident["timeline"]]
    assert incident["service"] == "iris" and incident["cluster"] == "acme" and "FailoverStarted" in reasons
    assert "failover" in polycloud.ok("incidents").stdout

    def slo_seen() -> dict[str, Any] | None:
        [service] = json.loads(polycloud.ok("slo", "--json").stdout)["services"]
        overall = service["overall"]
        return service if overall["requests"] >= 100 and overall["probe"]["runs"] > 0 else None

    service = polycloud.eventually(slo_seen, "traffic and probes in the SLO report")
    assert service["declared"] and service["objective"] == {
        "availability": 0.99,
        "p99Ms": 500,
        "windowDays": 7,
    }
    assert set(service["overall"]["burnRates"]) == {"5m", "30m", "1h", "6h"}
    assert {c["cluster"] for c in service["clusters"]} <= set(CLUSTERS)
    assert "service level objectives" in polycloud.ok("slo").stdout

    info = polycloud.runinfo()
    assert info is not None
    metrics = httpx.get(f"{info['api_url']}/metrics", timeout=30).text  # no token: a scrape target
    assert 'polycloud_federation_up{source="gateway"} 1.0' in metrics
    gateway_lines = [
        line for line in metrics.splitlines() if line.startswith("polycloud_gateway_requests_total{")
    ]
    assert any('provider="borealis"' in line and 'region="dc1"' in line for line in gateway_lines)
    assert any(
        line.startswith("polycloud_replica_requests_total{") and 'replica="' in line
        for line in metrics.splitlines()
    )
    assert "polycloud_controller_failovers_total" in metrics and "polycloud_slo_budget_left_ratio" in metrics
    assert "anomalies" in polycloud.status()

    request_id = "0af7651916cd43dd8448eb211c80319c"
    gateway = info["gateway_url"]
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]}
    answer = httpx.post(f"{gateway}/v2/models/iris/infer", json=body, headers={"x-request-id": request_id})
    assert answer.status_code == 200

    def traced() -> set[str] | None:
        spans = [s for s in read_spans(polycloud.home / "traces") if s["traceId"] == request_id]
        services = {s["service"] for s in spans}
        return services if services >= {"polycloud-gateway", "polycloud-replica"} else None

    polycloud.eventually(traced, "the request's spans from the gateway and the replica")

    def logged() -> bool | None:  # the log thread writes apart from the span exporter: wait for both
        logs = (polycloud.home / "logs" / "gateway.log").read_text()
        return any(request_id in line and '"trace_id"' in line for line in logs.splitlines()) or None

    polycloud.eventually(logged, "the request's log line, with its trace id")
    polycloud.ok("down")
