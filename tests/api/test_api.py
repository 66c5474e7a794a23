"""The control-plane API in-process: authentication, roles, apply/plan/status/history/rollback shapes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.support import EXAMPLE_MODEL, WEST_SITE, FaultLog

from polycloud.api.app import create_app
from polycloud.catalog import load_catalog
from polycloud.drivers.base import Fault
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.documents import fleet_to_documents
from polycloud.services.inspecting import Endpoints
from polycloud.spec import load_fleet
from polycloud.state import Store

FLEET = (
    WEST_SITE
    + """\
apiVersion: polycloud/v1
kind: Service
metadata: {name: scorer, labels: {team: t}}
spec:
  model: {path: iris.onnx}
  resources: {vcpus: 2, memoryGiB: 4}
  replicas: REPLICAS
"""
)


class Recorder:
    def __init__(self, store: Store) -> None:
        self.leader = FaultLog(store)  # applies recorded faults on every wake, as the leader does
        self.wakes = 0
        self.shutdowns = 0


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, Store, Recorder, Path]:
    shutil.copy(EXAMPLE_MODEL, tmp_path / "iris.onnx")
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    rec = Recorder(store)

    def wake() -> None:
        rec.wakes += 1
        rec.leader.wake()

    def shutdown() -> None:
        rec.shutdowns += 1

    ctx = ApiContext(
        store=store,
        fleet=FleetService(store, load_catalog(), on_change=wake),
        endpoints=Endpoints("http://api", "http://gw"),
        wake=wake,
        shutdown=shutdown,
    )
    return TestClient(create_app(ctx), base_url="http://localhost"), store, rec, tmp_path


def documents(tmp_path: Path, replicas: int = 2) -> list[dict[str, Any]]:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace("REPLICAS", str(replicas)))
    return fleet_to_documents(load_fleet([path], load_catalog()))


def auth(store: Store, role: str) -> dict[str, str]:
    token, _ = store.create_token(name=role, role=role, project=None, expires_at=None)
    return {"authorization": f"Bearer {token}"}


def test_health_is_open_everything_else_needs_a_token(setup: Any) -> None:
    client, store, _, _ = setup
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/status").status_code == 401
    assert client.get("/api/v1/status", headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/status", headers=auth(store, "viewer")).status_code == 200


def test_roles_gate_changes(setup: Any) -> None:
    client, store, rec, tmp_path = setup
    body = {"documents": documents(tmp_path), "dryRun": True}
    assert client.post("/api/v1/apply", json=body, headers=auth(store, "viewer")).status_code == 403
    assert client.post("/api/v1/apply", json=body, headers=auth(store, "deployer")).status_code == 200
    assert client.post("/api/v1/shutdown", headers=auth(store, "deployer")).status_code == 403
    assert client.post("/api/v1/shutdown", headers=auth(store, "admin")).status_code == 200
    assert rec.shutdowns == 1


def test_apply_records_revisions_and_status_shows_them(setup: Any) -> None:
    client, store, rec, tmp_path = setup
    h = auth(store, "deployer")
    preview = client.post("/api/v1/apply", json={"documents": documents(tmp_path), "dryRun": True}, headers=h)
    assert [c["action"] for c in preview.json()["changes"]] == ["+"]
    assert store.current() == []  # a dry run writes nothing
    applied = client.post("/api/v1/apply", json={"documents": documents(tmp_path)}, headers=h).json()
    assert applied["applied"] and applied["changes"][0]["revision"] == 1 and rec.wakes == 1
    status = client.get("/api/v1/status", headers=h).json()
    assert status["gateway"] == {"url": "http://gw"} and status["api"] == {"url": "http://api"}
    (svc,) = status["services"]
    assert svc["name"] == "scorer" and svc["revision"] == "r1"
    assert svc["clusters"][0]["cluster"] == "west" and svc["clusters"][0]["role"] == "active"
    again = client.post("/api/v1/apply", json={"documents": documents(tmp_path)}, headers=h).json()
    assert [c["action"] for c in again["changes"]] == ["="]
    changed = client.post("/api/v1/apply", json={"documents": documents(tmp_path, 3)}, headers=h).json()
    assert changed["changes"][0]["action"] == "~" and changed["changes"][0]["revision"] == 2
    assert changed["deltaUSD"] == pytest.approx(0.12 * 730)


def test_history_and_rollback(setup: Any) -> None:
    client, store, _, tmp_path = setup
    h = auth(store, "deployer")
    client.post("/api/v1/apply", json={"documents": documents(tmp_path, 1)}, headers=h)
    client.post("/api/v1/apply", json={"documents": documents(tmp_path, 2)}, headers=h)
    history = client.get("/api/v1/workloads/scorer/history", headers=h).json()
    assert [r["revision"] for r in history] == ["r1", "r2"]
    back = client.post("/api/v1/workloads/scorer/rollback", json={}, headers=h).json()
    assert back["revision"] == "r3" and back["placement"][0]["replicas"] == 1
    missing = client.get("/api/v1/workloads/scorr/history", headers=h)
    assert missing.status_code == 404 and "scorer" in missing.json()["error"]


def test_bad_documents_get_422_with_reasons_and_change_nothing(setup: Any) -> None:
    client, store, _, tmp_path = setup
    docs = documents(tmp_path)
    docs[1]["spec"]["replicaz"] = 2
    r = client.post("/api/v1/apply", json={"documents": docs}, headers=auth(store, "deployer"))
    assert r.status_code == 422 and any("replicaz" in i for i in r.json()["issues"])
    assert store.current() == []


def test_wrong_model_digest_is_refused(setup: Any) -> None:
    client, store, _, tmp_path = setup
    docs = documents(tmp_path)
    docs[1]["spec"]["model"]["sha256"] = "0" * 64
    r = client.post("/api/v1/apply", json={"documents": docs}, headers=auth(store, "deployer"))
    assert r.status_code == 400 and "sha256" in r.json()["error"]
    assert store.current() == []


def test_faults_are_recorded_for_the_leader_to_apply(setup: Any) -> None:
    client, store, rec, tmp_path = setup
    h = auth(store, "deployer")
    assert client.post("/api/v1/apply", json={"documents": documents(tmp_path)}, headers=h).status_code == 200
    r = client.post("/api/v1/faults", json={"cluster": "west", "kind": "latency", "delayMs": 50}, headers=h)
    assert r.status_code == 200 and rec.leader.carried("west") == [Fault(kind="latency", delay_ms=50)]
    assert client.delete("/api/v1/faults/west", headers=h).status_code == 200
    assert rec.leader.carried("west") == [] and store.live_faults() == []
    bad = client.post("/api/v1/faults", json={"cluster": "west", "kind": "meteor"}, headers=h)
    assert bad.status_code == 400
    unknown = client.post("/api/v1/faults", json={"cluster": "nowhere", "kind": "down"}, headers=h)
    assert unknown.status_code == 404 and store.live_faults() == []


def test_openapi_is_served(setup: Any) -> None:
    client, _, _, _ = setup
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/apply" in paths and "/api/v1/status" in paths
