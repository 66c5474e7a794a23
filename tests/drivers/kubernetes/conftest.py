"""Fixtures: the recorded API stand-in on 127.0.0.1, declared specs in memory, drivers against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from polycloud.drivers.kubernetes import KubernetesDriver
from polycloud.spec.models import Cluster, Service

from .fake_api import FakeApiServer

MakeDriver = Callable[..., KubernetesDriver]


class MemorySpecs:
    """`DeclaredSpecs` over dicts: what the control plane's store would answer."""

    def __init__(self) -> None:
        self.clusters: dict[str, Cluster] = {}
        self.services: dict[tuple[str, int], Service] = {}

    def cluster(self, name: str) -> Cluster | None:
        return self.clusters.get(name)

    def service(self, name: str, revision: int) -> Service | None:
        return self.services.get((name, revision))

    def add_cluster(self, name: str, driver: dict[str, Any]) -> None:
        doc = {
            "apiVersion": "polycloud/v1",
            "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {"provider": "aws", "region": "us-east-1", "driver": driver},
        }
        self.clusters[name] = Cluster.model_validate(doc)

    def add_service(self, name: str, revision: int, spec: dict[str, Any]) -> None:
        doc = {"apiVersion": "polycloud/v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
        self.services[(name, revision)] = Service.model_validate(doc)


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def specs(fake: FakeApiServer, tmp_path: Path) -> MemorySpecs:
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    found = MemorySpecs()
    driver = {
        "type": "kubernetes",
        "kubeconfig": str(kubeconfig),
        "context": "fake",
        "namespace": "ml",
        "image": "ghcr.io/acme/polycloud-server:0.1.0",
    }
    found.add_cluster("eks-use1", driver)
    found.add_service(
        "fraud",
        1,
        {
            "model": {"path": "models/fraud.onnx", "sha256": "a" * 64},
            "resources": {"accelerator": "T4", "vcpus": 4, "memoryGiB": 16},
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "API_TOKEN", "secret": "fraud-token"}],
        },
    )
    found.add_service("fraud", 2, {"model": {"path": "models/fraud-v2.onnx"}, "resources": {"vcpus": 2}})
    return found


@pytest.fixture
def make_driver(specs: MemorySpecs) -> Iterator[MakeDriver]:
    made: list[KubernetesDriver] = []

    def make(cluster: str = "eks-use1", **options: Any) -> KubernetesDriver:
        options = {"watch_timeout_s": 2, "gc_interval_s": 0.0, "retry_s": 0.1, **options}
        driver = KubernetesDriver.connect(cluster, specs, **options)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()
