"""Feature flags through the API in-process: applied and versioned with the fleet, listed, disabled (the
kill switch), rolled back, every change audited, and only fleet-wide tokens may change them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.support import WEST_SITE

from polycloud.api.app import create_app
from polycloud.catalog import load_catalog
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.documents import fleet_to_documents
from polycloud.services.inspecting import Endpoints
from polycloud.spec import load_fleet
from polycloud.state import Store

FLAG = """\
---
apiVersion: polycloud/v1
kind: FeatureFlag
metadata: {name: new-ranker}
spec:
  state: ENABLED
  variants: {"on": true, "off": false}
  defaultVariant: DEFAULT
"""


@pytest.fixture
def api(tmp_path: Path) -> tuple[TestClient, Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    ctx = ApiContext(
        store=store,
        fleet=FleetService(store, load_catalog()),
        endpoints=Endpoints("http://api", "http://gw"),
        wake=lambda: None,
        shutdown=lambda: None,
    )
    return TestClient(create_app(ctx), base_url="http://localhost"), store


def documents(tmp_path: Path, default: str | None = "off") -> list[dict[str, Any]]:
    path = tmp_path / "fleet.yaml"
    path.write_text(WEST_SITE + (FLAG.replace("DEFAULT", f'"{default}"') if default else ""))
    return fleet_to_documents(load_fleet([path], load_catalog()))


def auth(store: Store, role: str, project: str | None = None) -> dict[str, str]:
    token, _ = store.create_token(name=f"{role}-{project}", role=role, project=project, expires_at=None)
    return {"authorization": f"Bearer {token}"}


def apply(client: TestClient, headers: dict[str, str], docs: list[dict[str, Any]]) -> dict[str, Any]:
    answer = client.post("/api/v1/apply", json={"documents": docs}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_flags_are_versioned_by_apply_and_set_between_applies(api: Any, tmp_path: Path) -> None:
    client, store = api
    admin = auth(store, "deployer")
    created = {"Cluster/west": "created", "FeatureFlag/new-ranker": "created"}
    assert apply(client, admin, documents(tmp_path))["documents"] == created
    assert apply(client, admin, documents(tmp_path))["documents"] == {}  # unchanged: no new version
    preview = client.post(
        "/api/v1/apply", json={"documents": documents(tmp_path, "on"), "dryRun": True}, headers=admin
    )
    assert preview.json()["documents"] == {"FeatureFlag/new-ranker": "updated"}  # what `apply` shows first
    apply(client, admin, documents(tmp_path, default="on"))

    listed = client.get("/api/v1/flags", headers=auth(store, "viewer")).json()
    assert [(f["name"], f["state"], f["defaultVariant"], f["version"]) for f in listed] == [
        ("new-ranker", "ENABLED", "on", 2)
    ]
    killed = client.post("/api/v1/flags/new-ranker/state", json={"state": "DISABLED"}, headers=admin)
    assert killed.status_code == 200 and killed.json()["version"] == 3
    assert store.documents("FeatureFlag")[0].spec["spec"]["state"] == "DISABLED"  # what gateways read
    again = client.post("/api/v1/flags/new-ranker/state", json={"state": "DISABLED"}, headers=admin)
    assert again.status_code == 409

    back = client.post("/api/v1/flags/new-ranker/rollback", json={"to": 1}, headers=admin)
    assert back.status_code == 200 and back.json()["message"] == "rollback to v1"
    spec = store.documents("FeatureFlag")[0].spec["spec"]
    assert (spec["state"], spec["defaultVariant"]) == ("ENABLED", "off")
    history = client.get("/api/v1/flags/new-ranker/history", headers=admin).json()
    assert [(v["version"], v["state"], v["defaultVariant"]) for v in history] == [
        (1, "ENABLED", "off"),
        (2, "ENABLED", "on"),
        (3, "DISABLED", "on"),
        (4, "ENABLED", "off"),
    ]
    actions = [(e.action, e.target, e.revision) for e in store.audit_log(limit=20)]
    assert ("flag.disable", "new-ranker", 3) in actions and ("flag.rollback", "new-ranker", 4) in actions
    assert any(e.action == "apply" and e.detail.get("documents") == created for e in store.audit_log())


def test_an_apply_without_the_flag_deletes_it_and_a_rollback_restores_it(api: Any, tmp_path: Path) -> None:
    client, store = api
    admin = auth(store, "deployer")
    apply(client, admin, documents(tmp_path))
    assert apply(client, admin, documents(tmp_path, default=None))["documents"] == {
        "FeatureFlag/new-ranker": "deleted"
    }
    assert store.documents("FeatureFlag") == []
    assert (
        client.post("/api/v1/flags/new-ranker/state", json={"state": "DISABLED"}, headers=admin).status_code
        == 404
    )
    assert client.post("/api/v1/flags/new-ranker/rollback", json={"to": 2}, headers=admin).status_code == 409
    restored = client.post("/api/v1/flags/new-ranker/rollback", json={}, headers=admin)
    assert restored.status_code == 200 and restored.json()["version"] == 3
    assert [d.name for d in store.documents("FeatureFlag")] == ["new-ranker"]


def test_only_fleet_wide_deployers_change_flags(api: Any, tmp_path: Path) -> None:
    client, store = api
    apply(client, auth(store, "deployer"), documents(tmp_path))
    body = {"state": "DISABLED"}
    project = auth(store, "deployer", "alpha")
    assert client.post("/api/v1/flags/new-ranker/state", json=body, headers=project).status_code == 403
    assert (
        client.post("/api/v1/flags/new-ranker/state", json=body, headers=auth(store, "viewer")).status_code
        == 403
    )
    assert client.get("/api/v1/flags", headers=project).status_code == 200
    missing = client.get("/api/v1/flags/nope/history", headers=project)
    assert missing.status_code == 404 and "no FeatureFlag named 'nope'" in missing.text
