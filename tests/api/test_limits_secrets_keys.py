"""The API's body size limit, /secrets (values never come back) and /keys (shown once), in-process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.support import EXAMPLE_MODEL, WEST_SITE

from polycloud.api.app import create_app
from polycloud.api.limits import MAX_BODY_BYTES
from polycloud.catalog import load_catalog
from polycloud.secrets import LocalKeyWrapper, Vault
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.documents import fleet_to_documents
from polycloud.services.inspecting import Endpoints
from polycloud.spec import load_fleet
from polycloud.state import Store

VALUE = "planted-7d1e0c55"
FLEET = (
    WEST_SITE
    + """\
apiVersion: polycloud/v1
kind: Service
metadata: {name: scorer, labels: {project: risk}}
spec:
  model: {path: iris.onnx}
  resources: {vcpus: 2, memoryGiB: 4}
"""
)


@dataclass
class Api:
    client: TestClient
    store: Store
    vault: Vault

    def auth(self, role: str, project: str | None = None) -> dict[str, str]:
        token, _ = self.store.create_token(name=role, role=role, project=project, expires_at=None)
        return {"authorization": f"Bearer {token}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    shutil.copy(EXAMPLE_MODEL, tmp_path / "iris.onnx")
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    context = ApiContext(
        store=store,
        fleet=FleetService(store, load_catalog()),
        endpoints=Endpoints("http://api", "http://gw"),
        wake=lambda: None,
        shutdown=lambda: None,
    )
    app = create_app(context)
    vault = Vault(store, LocalKeyWrapper.load(None, tmp_path), refresh_s=0.0)
    app.state.vault = vault
    (tmp_path / "fleet.yaml").write_text(FLEET)
    documents = fleet_to_documents(load_fleet([tmp_path / "fleet.yaml"], load_catalog()))
    with TestClient(app, base_url="http://localhost") as client:
        made = Api(client, store, vault)
        admin = made.auth("admin")
        assert client.post("/api/v1/apply", json={"documents": documents}, headers=admin).status_code == 200
        yield made
    store.close()


# -- body size ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_gets_413_with_the_reason(api: Api) -> None:
    big = b'{"documents": [' + b" " * MAX_BODY_BYTES + b"]}"
    answer = api.client.post("/api/v1/plan", content=big, headers=api.auth("viewer"))
    assert answer.status_code == 413
    assert answer.json() == {"error": f"request body larger than {MAX_BODY_BYTES} bytes"}


def test_a_chunked_body_over_the_limit_gets_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"documents": ['
        for _ in range(MAX_BODY_BYTES // 2**16 + 2):
            yield b" " * 2**16
        yield b"]}"

    answer = api.client.post("/api/v1/plan", content=chunks(), headers=api.auth("viewer"))
    assert answer.status_code == 413


def test_a_body_under_the_limit_is_served(api: Api) -> None:
    answer = api.client.post("/api/v1/plan", json={"documents": []}, headers=api.auth("viewer"))
    assert answer.status_code != 413


# -- secrets -----------------------------------------------------------------------------------


def test_secrets_are_set_listed_and_deleted_without_their_values(api: Api) -> None:
    deployer = api.auth("deployer")
    put = api.client.put(
        "/api/v1/secrets/db", params={"project": "risk"}, json={"value": VALUE}, headers=deployer
    )
    assert put.status_code == 200
    assert put.json()["version"] == 1 and VALUE not in put.text
    listed = api.client.get("/api/v1/secrets", headers=api.auth("viewer"))
    assert [(s["name"], s["project"]) for s in listed.json()] == [("db", "risk")]
    assert VALUE not in listed.text
    assert api.vault.lookup("db", "risk") == VALUE

    gone = api.client.delete("/api/v1/secrets/db", params={"project": "risk"}, headers=deployer)
    assert gone.status_code == 200
    missing = api.client.delete("/api/v1/secrets/db", params={"project": "risk"}, headers=deployer)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("role", "project", "target", "status"),
    [
        ("viewer", None, None, 403),
        ("deployer", "risk", "risk", 200),
        ("deployer", "risk", "fraud", 403),
        ("deployer", "risk", None, 403),
        ("deployer", None, None, 200),
    ],
)
def test_setting_a_secret_needs_a_deployer_of_its_project(
    api: Api, role: str, project: str | None, target: str | None, status: int
) -> None:
    params = {"project": target} if target else None
    answer = api.client.put(
        "/api/v1/secrets/x", params=params, json={"value": VALUE}, headers=api.auth(role, project)
    )
    assert answer.status_code == status
    assert VALUE not in answer.text


def test_bad_secret_requests_are_4xx_and_never_echo_the_value(api: Api) -> None:
    deployer = api.auth("deployer")
    for name, body in (
        ("bad name!", {"value": VALUE}),
        ("ok", {"value": VALUE + "\0"}),
        ("ok", {"valu": VALUE}),
    ):
        answer = api.client.put(f"/api/v1/secrets/{name}", json=body, headers=deployer)
        assert 400 <= answer.status_code < 500, answer.text
        assert VALUE not in answer.text
    assert api.store.secrets() == []


def test_rotating_the_master_key_is_for_admins(api: Api) -> None:
    api.client.put("/api/v1/secrets/a", json={"value": VALUE}, headers=api.auth("deployer"))
    assert api.client.post("/api/v1/secrets/rotate-master", headers=api.auth("deployer")).status_code == 403
    answer = api.client.post("/api/v1/secrets/rotate-master", headers=api.auth("admin"))
    assert answer.status_code == 200
    assert answer.json()["rewrapped"] == 1
    assert api.vault.lookup("a", None) == VALUE


# -- inference keys ----------------------------------------------------------------------------


def test_a_key_is_shown_once_and_listed_without_it(api: Api) -> None:
    body = {"service": "scorer", "rps": 5, "burst": 10, "monthlyQuota": 1000}
    made = api.client.post("/api/v1/keys", json=body, headers=api.auth("deployer", "risk"))
    assert made.status_code == 200
    key = made.json()["key"]
    assert key.startswith("pk_") and made.json()["monthlyQuota"] == 1000
    listed = api.client.get("/api/v1/keys", headers=api.auth("viewer"))
    assert [k["id"] for k in listed.json()] == [made.json()["id"]]
    assert key not in listed.text and listed.json()[0]["prefix"] == key[:10]

    revoked = api.client.delete(f"/api/v1/keys/{made.json()['id']}", headers=api.auth("deployer"))
    assert revoked.json()["revoked"] is True


def test_a_key_with_token_limits_lists_them_and_its_tokens_this_month(api: Api) -> None:
    body = {"service": "scorer", "tokensPerMinute": 60000, "monthlyTokens": 5 * 10**9}
    made = api.client.post("/api/v1/keys", json=body, headers=api.auth("deployer", "risk"))
    assert made.status_code == 200, made.text
    assert (made.json()["tokensPerMinute"], made.json()["monthlyTokens"], made.json()["tokensThisMonth"]) == (
        60000,
        5 * 10**9,
        0,
    )
    api.store.add_key_usage(
        datetime.now(UTC).strftime("%Y-%m"), {made.json()["id"]: 2}, {made.json()["id"]: 1234}
    )
    [listed] = api.client.get("/api/v1/keys", headers=api.auth("viewer")).json()
    assert set(listed) == {
        "id",
        "service",
        "name",
        "prefix",
        "rps",
        "burst",
        "monthlyQuota",
        "usedThisMonth",
        "tokensPerMinute",
        "monthlyTokens",
        "tokensThisMonth",
        "createdAt",
        "revoked",
    }
    assert (listed["usedThisMonth"], listed["tokensThisMonth"], listed["monthlyQuota"]) == (2, 1234, None)
    entry = next(e for e in api.store.audit_log(limit=10) if e.action == "key.create")
    assert entry.detail["tokens_per_minute"] == 60000 and entry.detail["monthly_tokens"] == 5 * 10**9


@pytest.mark.parametrize(
    ("body", "project", "status"),
    [
        ({"service": "scorer", "tokensPerMinute": 0}, None, 400),
        ({"service": "scorer", "monthlyTokens": -1}, None, 400),
        ({"service": "scorer", "monthlyTokens": 10**16}, None, 400),
        ({"service": "scorer", "tokensPerMinute": 1.5}, None, 400),
        ({"service": "nope"}, None, 404),
        ({"service": "scorer"}, "fraud", 403),
        ({"service": "scorer", "rps": 0}, None, 400),
        ({"service": "scorer", "burst": 0}, None, 400),
        ({"service": "scorer", "monthlyQuota": -1}, None, 400),
    ],
)
def test_bad_key_requests_are_refused(
    api: Api, body: dict[str, object], project: str | None, status: int
) -> None:
    answer = api.client.post("/api/v1/keys", json=body, headers=api.auth("deployer", project))
    assert answer.status_code == status, answer.text
    assert api.store.inference_keys() == []


def test_secret_and_key_changes_are_audited_without_values(api: Api) -> None:
    deployer = api.auth("deployer")
    api.client.put("/api/v1/secrets/db", json={"value": VALUE}, headers=deployer)
    made = api.client.post("/api/v1/keys", json={"service": "scorer"}, headers=deployer).json()
    api.client.delete(f"/api/v1/keys/{made['id']}", headers=deployer)
    api.client.delete("/api/v1/secrets/db", headers=deployer)
    entries = api.store.audit_log(limit=20)
    actions = [(e.action, e.outcome) for e in entries]
    for action in ("secret.set", "key.create", "key.revoke", "secret.delete"):
        assert (action, "ok") in actions
    assert VALUE not in repr(entries) and made["key"] not in repr(entries)
