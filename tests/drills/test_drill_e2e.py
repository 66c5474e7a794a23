"""`polycloud drill outage` end to end: a real fleet over two private sites, real load, a real outage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.e2e.conftest import IRIS_MODEL, Fleet, Polycloud, ServiceDecl, replica_processes

pytestmark = pytest.mark.e2e

CLUSTERS = ("acme", "borealis")


def test_outage_drill_moves_traffic_without_failing_a_request(polycloud: Polycloud, tmp_path: Path) -> None:
    model = Path(shutil.copy(IRIS_MODEL, tmp_path / "iris.onnx"))
    fleet = Fleet(tmp_path, model, CLUSTERS, (ServiceDecl("iris", CLUSTERS, replicas=1),))
    polycloud.ok("apply", fleet.write(), "--yes")
    polycloud.expect_exactly(fleet)

    done = polycloud.ok("drill", "outage", "acme", "--rps", "50", "--duration", "6", "--json")
    report = json.loads(done.stdout)

    assert {"requests", "failed", "p50Ms", "p99Ms", "rtoMs", "recoveryMs"} <= set(report)
    assert report["cluster"] == "acme" and report["service"] == "iris" and report["kind"] == "outage"
    assert report["requests"] == 300
    assert report["failed"] == 0, report["statusCodes"]
    assert report["statusCodes"] == {"200": 300}
    assert sum(report["byCluster"].values()) == 300 and report["byCluster"].get("borealis", 0) > 0
    assert report["faultAt"] >= 2.0 and report["clearedAt"] >= 4.0 and report["injectCallMs"] >= 0
    assert report["rtoMs"] is not None and report["rtoMs"] >= 0
    assert report["p50Ms"] <= report["p99Ms"]
    print(json.dumps(report))  # the measured drill, for the record (pytest -s)

    polycloud.ok("down")
    assert replica_processes(polycloud.home) == []


def test_drill_on_an_unknown_cluster_names_the_known_ones(polycloud: Polycloud, tmp_path: Path) -> None:
    model = Path(shutil.copy(IRIS_MODEL, tmp_path / "iris.onnx"))
    fleet = Fleet(tmp_path, model, CLUSTERS, (ServiceDecl("iris", CLUSTERS, replicas=1),))
    polycloud.ok("apply", fleet.write(), "--yes")
    rc, _, stderr = polycloud.cli("drill", "outage", "nowhere", "--duration", "1")
    assert rc == 1
    assert "nowhere" in stderr and "acme" in stderr and "borealis" in stderr
    rc, _, stderr = polycloud.cli("drill", "outage", "acme", "--service", "nope", "--duration", "1")
    assert rc == 1 and "nope" in stderr and "iris" in stderr
