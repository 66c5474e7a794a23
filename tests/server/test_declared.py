"""`StoreSpecs`: the declared Cluster and Service revisions a driver reads, straight from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polycloud.server.declared import StoreSpecs
from polycloud.state import DocumentInput, Store, WorkloadInput, content_hash

CLUSTER = {
    "apiVersion": "polycloud/v1",
    "kind": "Cluster",
    "metadata": {"name": "eks-use1"},
    "spec": {"provider": "aws", "region": "us-east-1", "driver": {"type": "kubernetes", "image": "acme/s:1"}},
}


def service(path: str) -> dict[str, Any]:
    return {
        "apiVersion": "polycloud/v1",
        "kind": "Service",
        "metadata": {"name": "fraud"},
        "spec": {"model": {"path": path}},
    }


def record(store: Store, spec: dict[str, Any]) -> None:
    store.apply(
        workloads=[WorkloadInput("fraud", "Service", spec, content_hash(spec), [], None)],
        documents=[DocumentInput("Cluster", "eks-use1", CLUSTER, content_hash(CLUSTER))],
        author="test",
        message="",
    )


def test_reads_clusters_and_every_revision_of_a_service(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        record(store, service("v1.onnx"))
        record(store, service("v2.onnx"))
        specs = StoreSpecs(store)
        cluster = specs.cluster("eks-use1")
        assert cluster is not None and cluster.spec.driver.image == "acme/s:1"
        assert specs.cluster("nope") is None
        first, second = specs.service("fraud", 1), specs.service("fraud", 2)
        assert first is not None and first.spec.model.path == "v1.onnx"
        assert second is not None and second.spec.model.path == "v2.onnx"
        assert specs.service("fraud", 3) is None and specs.service("ghost", 1) is None
