"""Apply is blocked by a violation: nothing is recorded, the API answers 422, the CLI points at the files."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support import EXAMPLE_MODEL, WEST_SITE

from polycloud.api.errors import install
from polycloud.catalog import Catalog
from polycloud.client.http import error_from
from polycloud.policy import PolicyViolationError
from polycloud.policy.violations import undotted
from polycloud.services.applying import FleetService
from polycloud.services.documents import fleet_to_documents
from polycloud.state import Store

from .support import line_of, load, policy, write

FLEET = (
    WEST_SITE
    + """\
apiVersion: polycloud/v1
kind: Service
metadata: {name: scorer, labels: {team: t}}
spec:
  model: {path: iris.onnx}
  resources: {vcpus: 2, memoryGiB: 4}
"""
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    shutil.copy(EXAMPLE_MODEL, tmp_path / "iris.onnx")
    return Store.open(f"sqlite:///{tmp_path / 'state.db'}")


def service(store: Store, catalog: Catalog, secrets: set[str] | None = None) -> FleetService:
    return FleetService(store, catalog, secret_names=lambda: secrets or set())


def test_a_violation_blocks_apply_and_records_nothing(store: Store, catalog: Catalog, tmp_path: Path) -> None:
    path = write(tmp_path, FLEET, policy("requiredLabels: [env]"))
    documents = fleet_to_documents(load(catalog, path))
    for dry_run in (True, False):
        with pytest.raises(PolicyViolationError) as caught:
            service(store, catalog).apply(documents, author="me", message="", dry_run=dry_run)
        (v,) = caught.value.violations
        assert (v.document, v.rule, v.file) == ("scorer", "requiredLabels[0]", "document[1]")
    assert store.current() == []


def test_apply_judges_the_digest_it_pins(store: Store, catalog: Catalog, tmp_path: Path) -> None:
    digest = (EXAMPLE_MODEL.parent / "SHA256SUMS").read_text().split()[0]
    ok = fleet_to_documents(load(catalog, write(tmp_path, FLEET, policy(f"approvedModels: [{digest}]"))))
    assert service(store, catalog).apply(ok, author="me", message="", dry_run=False).applied
    bad = fleet_to_documents(load(catalog, write(tmp_path, FLEET, policy(f"approvedModels: [{'c' * 64}]"))))
    with pytest.raises(PolicyViolationError, match="is not approved"):
        service(store, catalog).apply(bad, author="me", message="", dry_run=True)


def test_apply_checks_required_secrets_against_the_store(
    store: Store, catalog: Catalog, tmp_path: Path
) -> None:
    documents = fleet_to_documents(load(catalog, write(tmp_path, FLEET, policy("requiredSecrets: [hf]"))))
    with pytest.raises(PolicyViolationError, match="requires secret hf"):
        service(store, catalog).apply(documents, author="me", message="", dry_run=True)
    assert service(store, catalog, {"hf"}).apply(documents, author="me", message="", dry_run=True)


def test_the_api_answers_422_with_the_violations_and_the_client_points_them_into_files(
    store: Store, catalog: Catalog, tmp_path: Path
) -> None:
    path = write(tmp_path, FLEET, policy("requiredLabels: [env]"))
    fleet = load(catalog, path)
    with pytest.raises(PolicyViolationError) as caught:
        service(store, catalog).apply(fleet_to_documents(fleet), author="me", message="", dry_run=True)
    app = FastAPI()
    install(app)

    @app.get("/apply")
    def blocked() -> None:
        raise caught.value

    answer = TestClient(app).get("/apply")
    assert answer.status_code == 422
    assert answer.json()["violations"][0]["rule"] == "requiredLabels[0]"
    error = error_from(httpx.Response(422, json=answer.json()))
    assert isinstance(error, PolicyViolationError)
    (v,) = error.located(fleet).violations
    assert (v.file, v.line) == (str(path), line_of(path, "name: scorer"))
    assert v.ruleAt.startswith(f"{path}:{line_of(path, 'requiredLabels')}:")
    assert f"{path}:{v.line}:" in str(error.located(fleet))


def test_rule_names_read_back_as_field_paths() -> None:
    assert undotted("budgets[1]") == ("budgets", 1)
    assert undotted("spec.reads[0].dataset") == ("spec", "reads", 0, "dataset")
    assert undotted("providers") == ("providers",)
