"""`StoreRouteSource` on a real SQLite state store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polycloud.catalog import load_catalog
from polycloud.gateway import ClusterRoute, ReplicaRoute, StoreRouteSource
from polycloud.state import DocumentInput, ReplicaRecord, Store, WorkloadInput, content_hash


def service(name: str, pattern: str) -> WorkloadInput:
    spec: dict[str, Any] = {
        "apiVersion": "polycloud/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"model": "m.onnx", "pattern": pattern},
    }
    return WorkloadInput(name=name, kind="Service", spec=spec, content_hash=content_hash(spec), placement=[])


def job(name: str) -> WorkloadInput:
    spec: dict[str, Any] = {"kind": "Job", "metadata": {"name": name}, "spec": {"hours": 1}}
    return WorkloadInput(name=name, kind="Job", spec=spec, content_hash=content_hash(spec), placement=[])


def cluster(name: str, **spec: Any) -> DocumentInput:
    document = {"apiVersion": "polycloud/v1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec}
    return DocumentInput(kind="Cluster", name=name, spec=document, content_hash=content_hash(document))


def record(
    rid: str, workload: str, cluster: str, role: str, endpoint: str | None, state: str
) -> ReplicaRecord:
    return ReplicaRecord(
        id=rid,
        workload=workload,
        cluster=cluster,
        role=role,
        revision=1,
        endpoint=endpoint,
        pid=None,
        state=state,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as s:
        yield s


def test_snapshot_reads_services_patterns_replicas_and_cluster_locations(store: Store) -> None:
    store.apply(
        workloads=[service("fraud", "active-passive"), service("idle", "single"), job("train")],
        documents=[
            cluster("aws-use1", provider="aws", region="us-east-1"),
            cluster("dc", provider="onprem", region="basement", location={"lat": 52.5, "lon": 13.4}),
        ],
        author="test",
        message="",
    )
    store.replace_replicas(
        [
            record("fraud-aws-use1-0", "fraud", "aws-use1", "active", "http://127.0.0.1:5001", "ready"),
            record("fraud-dc-0", "fraud", "dc", "standby", None, "starting"),
            record("train-aws-use1-0", "train", "aws-use1", "active", None, "ready"),
            record("gone-dc-0", "gone", "dc", "active", "http://127.0.0.1:5002", "stopping"),
        ]
    )

    table = StoreRouteSource(store, load_catalog()).snapshot()

    assert sorted(table.services) == ["fraud", "gone", "idle"]
    fraud = table.services["fraud"]
    assert fraud.pattern == "active-passive"
    assert fraud.replicas == (
        ReplicaRoute("fraud-aws-use1-0", "aws-use1", "active", "http://127.0.0.1:5001", "ready", 1),
        ReplicaRoute("fraud-dc-0", "dc", "standby", None, "starting", 1),
    )
    assert table.services["idle"].replicas == ()
    assert table.services["gone"].pattern == "single"
    assert table.clusters["aws-use1"] == ClusterRoute("aws-use1", "aws", "us-east-1", 38.99, -77.45)
    assert table.clusters["dc"] == ClusterRoute("dc", "onprem", "basement", 52.5, 13.4)


def test_snapshot_without_catalog_leaves_catalog_regions_unlocated(store: Store) -> None:
    store.apply(
        workloads=[], documents=[cluster("c", provider="gcp", region="europe-west4")], author="t", message=""
    )
    assert StoreRouteSource(store).snapshot().clusters["c"] == ClusterRoute("c", "gcp", "europe-west4")
