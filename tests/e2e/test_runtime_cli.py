"""The runtime as a user drives it (apply, status, inference, logs, down); bad input changes nothing."""

from __future__ import annotations

import base64
import os
import socket
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.e2e.conftest import Fleet, Polycloud

from polycloud.pki.contexts import TlsFiles, client_context

pytestmark = pytest.mark.e2e

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def infer_body() -> dict[str, object]:
    return {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]}


def test_apply_serves_real_inference_and_down_stops_everything(
    polycloud: Polycloud, fleet: Fleet, tmp_path: Path
) -> None:
    applied = polycloud.ok("apply", fleet.write(), "--yes")
    assert "started the control plane in the background" in applied.stderr
    assert "+ " in applied.stdout or "+" in applied.stdout
    status = polycloud.expect_exactly(fleet)
    assert set(status) >= {"gateway", "api", "services"}
    replica = status["services"][0]["clusters"][0]["replicas"][0]
    assert replica["endpoint"].startswith("https://")  # replicas speak mutual TLS: a user calls them
    polycloud.ok("cert", "issue", "--out", tmp_path / "me")  # with an admin's fleet certificate
    with httpx.Client(timeout=10, verify=client_context(TlsFiles(tmp_path / "me"))) as http:
        direct = http.post(f"{replica['endpoint']}/v2/models/alpha/infer", json=infer_body())
        assert direct.status_code == 200 and direct.json()["outputs"][0]["data"] == [0]  # setosa
        meta = http.get(f"{replica['endpoint']}/v2/models/alpha").json()
        assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 4]}
        via = http.post(f"{status['gateway']['url']}/v2/models/alpha/infer", json=infer_body())
        assert via.status_code == 200 and via.headers["x-polycloud-cluster"] in fleet.clusters
        assert via.headers["x-request-id"]
    logs = polycloud.ok("logs", replica["id"], "--tail", "5")
    assert '"event": "ready"' in logs.stdout
    again = polycloud.ok("apply", fleet.write(), "--yes")
    assert "no changes" in again.stdout
    polycloud.ok("down")
    assert polycloud.replica_processes() == [] and polycloud.control_plane_pid() is None


def test_missing_model_is_refused_before_anything_starts(polycloud: Polycloud, fleet: Fleet) -> None:
    path = fleet.write()
    fleet.model.unlink()
    rc, out, err = polycloud.cli("apply", path, "--yes")
    assert rc == 1 and "model file not found" in err and f"{path.name}:" in err
    assert "Traceback" not in out + err
    assert polycloud.control_plane_pid() is None


def test_wrong_digest_and_corrupt_model_change_nothing(polycloud: Polycloud, fleet: Fleet) -> None:
    path = fleet.write()
    text = path.read_text()
    path.write_text(text.replace("path: ", f"sha256: {'ab' * 32}\n    path: ", 1))
    rc, out, err = polycloud.cli("apply", path, "--yes")
    assert rc == 1 and "sha256" in err and "Traceback" not in out + err
    assert polycloud.status()["services"] == []
    path.write_text(text)
    fleet.model.write_bytes(b"this is not an onnx model")
    rc, out, err = polycloud.cli("apply", path, "--yes")
    assert rc == 1 and "ONNX" in err and "Traceback" not in out + err
    assert polycloud.status()["services"] == [] and polycloud.replica_processes() == []


def test_unknown_cluster_names_file_line_and_field(polycloud: Polycloud, fleet: Fleet) -> None:
    path = fleet.write()
    path.write_text(path.read_text().replace("- acme\n", "- acmee\n", 1))
    rc, _, err = polycloud.cli("apply", path, "--yes")
    assert rc == 1 and f"{path.name}:" in err and "unknown cluster 'acmee' (did you mean 'acme'?)" in err


def test_unreachable_database_is_a_clear_error(polycloud: Polycloud, fleet: Fleet) -> None:
    polycloud.env["POLYCLOUD_DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    rc, out, err = polycloud.cli("apply", fleet.write(), "--yes")
    assert rc == 1 and "cannot open the state database" in err and "Traceback" not in out + err
    assert polycloud.replica_processes() == []


def test_taken_gateway_address_is_a_clear_error(polycloud: Polycloud, fleet: Fleet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        polycloud.env["POLYCLOUD_GATEWAY_ADDR"] = f"127.0.0.1:{taken.getsockname()[1]}"
        rc, out, err = polycloud.cli("apply", fleet.write(), "--yes")
    assert rc == 1 and "cannot listen on" in err and "Traceback" not in out + err
    assert polycloud.replica_processes() == []


@pytest.mark.postgres
def test_runtime_on_postgresql(polycloud: Polycloud, fleet: Fleet) -> None:
    schema = f"pc_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        polycloud.env["POLYCLOUD_DATABASE_URL"] = (
            f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        )
        polycloud.env["POLYCLOUD_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()  # shared keys
        polycloud.ok("apply", fleet.write(), "--yes")
        status = polycloud.status()
        assert {s["name"] for s in status["services"]} == {"alpha", "beta"}
        replicas = [r for s in status["services"] for c in s["clusters"] for r in c["replicas"]]
        assert replicas and all(r["state"] == "ready" for r in replicas)
        assert "r1" in polycloud.ok("history", "alpha").stdout
        polycloud.ok("down")
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_help_has_examples(polycloud: Polycloud) -> None:
    commands = ("validate", "plan", "apply", "status", "history", "rollback", "down", "logs", "up", "demo")
    for command in commands:
        out = polycloud.ok(command, "--help").stdout
        assert "Example: polycloud" in out, command
    for roles in (("server",), ("server", "init"), ("gateway",), ("drill", "blackhole")):
        out = polycloud.ok(*roles, "--help").stdout
        assert "Example:" in out and "polycloud " + " ".join(roles) in out.replace("\n", " "), roles
