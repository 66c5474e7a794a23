"""A recorded fleet for lineage tests: an EU site trains a model from a dataset, a US cluster serves it.

`LineageFleet` applies the fleet to a real store (as `polycloud apply` does) and moves job attempts and
replicas through the states the job controller and the reconciler would record.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from tests.support import EXAMPLE_MODEL

from polycloud.catalog import Catalog
from polycloud.services.applying import FleetService
from polycloud.services.documents import fleet_to_documents
from polycloud.spec import load_fleet
from polycloud.state import ReplicaRecord, ReplicaState, Store
from polycloud.state.job_records import AttemptInput

FLEET = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: us}
spec: {provider: aws, region: us-east-1}
---
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: eu}
spec:
  provider: onprem
  region: lisbon
  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
---
apiVersion: polycloud/v1
kind: Dataset
metadata: {name: records}
spec: {cluster: eu, sizeGB: 100}
---
apiVersion: polycloud/v1
kind: Job
metadata: {name: train}
spec:
  hours: 1
  resources: {vcpus: 4, memoryGiB: 8}
  reads: [{dataset: records}]
  placement: {clusters: [eu]}
  outputs: [{name: model, path: models/scorer.onnx}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: scorer}
spec:
  model: {path: models/scorer.onnx}
  resources: {vcpus: 2, memoryGiB: 4}
  placement: {clusters: [us]}
"""


class LineageFleet:
    """The fleet above, applied to a SQLite store under `root`."""

    def __init__(self, root: Path, catalog: Catalog) -> None:
        (root / "models").mkdir(parents=True, exist_ok=True)
        self.model = root / "models" / "scorer.onnx"
        shutil.copy(EXAMPLE_MODEL, self.model)
        self.digest = hashlib.sha256(self.model.read_bytes()).hexdigest()
        (root / "fleet.yaml").write_text(FLEET)
        self.url = f"sqlite:///{root / 'state.db'}"
        self.store = Store.open(self.url)
        documents = fleet_to_documents(load_fleet([root / "fleet.yaml"], catalog))
        FleetService(self.store, catalog).apply(documents, author="t", message="", dry_run=False)
        self.run_id = self.store.job_run("train", 1, "eu").id

    def start_attempt(self, number: int = 1) -> None:
        started = datetime.now(UTC)
        self.store.add_job_attempt(self.run_id, AttemptInput(number, "eu", 4242, 0.12, 1, started))

    def end_attempt(self, number: int = 1, *, state: str = "succeeded", message: str = "") -> None:
        run = "succeeded" if state == "succeeded" else ("failed" if state == "failed" else "pending")
        self.store.end_job_attempt(self.run_id, number, state=state, run_state=run, message=message)  # type: ignore[arg-type]

    def replicas(self, *states: tuple[int, ReplicaState]) -> None:
        """The observed snapshot: one replica of `scorer` on `us` per (revision, state)."""
        self.store.replace_replicas(
            [
                ReplicaRecord(f"scorer-us-r{rev}-{i}", "scorer", "us", "active", rev, None, None, state)
                for i, (rev, state) in enumerate(states)
            ]
        )
