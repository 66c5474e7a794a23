"""A control-plane API in-process over a real store, with a fleet of two projects and tokens of each.

`governed` records one private site `west` and two services, `alpha-svc` (project alpha) and `beta-svc`
(project beta), applied by a fleet-wide admin. `Governed.token(role, project)` makes tokens on demand.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from tests.support import FaultLog

from polycloud.api.app import create_app
from polycloud.catalog import load_catalog
from polycloud.controller.jobs import JobController
from polycloud.drivers.registry import create_driver
from polycloud.secrets import Vault
from polycloud.secrets.local import LocalKeyWrapper
from polycloud.server.workload import WorkloadIssuer
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.documents import fleet_to_documents
from polycloud.services.inspecting import Endpoints
from polycloud.spec import load_fleet
from polycloud.state import Store

MODEL = Path(__file__).resolve().parents[2] / "examples" / "fleet" / "models" / "iris.onnx"
CLUSTER: dict[str, Any] = {
    "apiVersion": "polycloud/v1",
    "kind": "Cluster",
    "metadata": {"name": "west"},
    "spec": {
        "provider": "acme",
        "region": "lisbon",
        "location": {"lat": 38.7, "lon": -9.1, "jurisdiction": "EU"},
        "instances": [{"name": "cpu4", "vcpus": 4, "memoryGiB": 16, "hourlyUSD": 0.12}],
    },
}


def service(name: str, project: str | None, replicas: int = 1) -> dict[str, Any]:
    labels = {"project": project} if project else {}
    return {
        "apiVersion": "polycloud/v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "model": {"path": "iris.onnx"},
            "resources": {"vcpus": 1, "memoryGiB": 1},
            "replicas": replicas,
        },
    }


@dataclass
class Governed:
    client: TestClient
    store: Store
    root: Path
    faults: FaultLog
    shutdowns: int = 0

    def token(self, role: str, project: str | None = None) -> dict[str, str]:
        """Headers of a fresh token with `role` in `project` (None: fleet-wide)."""
        secret, _ = self.store.create_token(
            name=f"{role}-{project}", role=role, project=project, expires_at=None
        )
        return {"authorization": f"Bearer {secret}"}

    def documents(self, *docs: dict[str, Any]) -> list[dict[str, Any]]:
        """`docs` as the CLI sends them: loaded from YAML next to the model, normalised."""
        path = self.root / "fleet.yaml"
        path.write_text(yaml.safe_dump_all(list(docs)))
        return fleet_to_documents(load_fleet([path], load_catalog()))

    def apply(self, headers: dict[str, str], *docs: dict[str, Any], dry_run: bool = False) -> Any:
        body = {"documents": self.documents(*docs), "dryRun": dry_run}
        return self.client.post("/api/v1/apply", json=body, headers=headers)


@pytest.fixture
def governed(tmp_path: Path) -> Iterator[Governed]:
    shutil.copy(MODEL, tmp_path / "iris.onnx")
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    holder: list[Governed] = []
    leader = FaultLog(store)  # applies recorded faults on every wake, as the leader's reconciler does

    def shutdown() -> None:
        holder[0].shutdowns += 1

    context = ApiContext(
        store=store,
        fleet=FleetService(store, load_catalog()),
        endpoints=Endpoints("http://api", "http://gw"),
        wake=leader.wake,
        shutdown=shutdown,
    )
    app = create_app(context)
    # What the control plane hangs on the app (server/process.py); the job loop itself does not run.
    app.state.vault = Vault(store, LocalKeyWrapper.load(None, tmp_path))
    app.state.workload = WorkloadIssuer(store, LocalKeyWrapper.load(None, tmp_path), "http://api")
    app.state.jobs = JobController(store, context.fleet.catalog, tmp_path, create_driver)
    gov = Governed(TestClient(app, base_url="http://localhost"), store, tmp_path, leader)
    holder.append(gov)
    admin = gov.token("admin")
    applied = gov.apply(admin, CLUSTER, service("alpha-svc", "alpha"), service("beta-svc", "beta"))
    assert applied.status_code == 200, applied.text
    yield gov
    store.close()
