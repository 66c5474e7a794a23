"""The unchanged reconciler drives a kubernetes cluster (the recorded API stand-in) to the declared fleet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support import build_model, wait_until

from polycloud.catalog import load_catalog
from polycloud.controller.reconciler import Reconciler
from polycloud.drivers.kubernetes import KubernetesDriver
from polycloud.drivers.registry import create_driver
from polycloud.placement.sites import Point
from polycloud.server.declared import StoreSpecs
from polycloud.services.applying import FleetService
from polycloud.state import Store

from .fake_api import FakeApiServer


def documents(kubeconfig: Path, model: Path, replicas: int, level: str) -> list[dict[str, Any]]:
    driver = {
        "type": "kubernetes",
        "kubeconfig": str(kubeconfig),
        "namespace": "ml",
        "image": "acme/server:1",
    }
    cluster = {"provider": "aws", "region": "us-east-1", "driver": driver}
    service = {
        "model": {"path": str(model)},
        "resources": {"vcpus": 2, "memoryGiB": 4},
        "replicas": replicas,
        "env": [{"name": "LEVEL", "value": level}],
    }
    return [
        {"apiVersion": "polycloud/v1", "kind": "Cluster", "metadata": {"name": "eks-use1"}, "spec": cluster},
        {"apiVersion": "polycloud/v1", "kind": "Service", "metadata": {"name": "fraud"}, "spec": service},
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def test_apply_scale_roll_and_remove_through_the_reconciler(
    fake: FakeApiServer, store: Store, tmp_path: Path
) -> None:
    catalog = load_catalog()
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    model = build_model(tmp_path / "fraud.onnx")
    fleet = FleetService(store, catalog, secret_names=lambda: set())
    reconciler = Reconciler(
        store=store,
        catalog=catalog,
        home=tmp_path,
        origin=Point(39.0, -77.5, ("aws", "us-east-1")),
        make_driver=lambda kind, cluster, home: create_driver(kind, cluster, home, StoreSpecs(store)),
    )

    def converge(want_ready: int) -> None:
        def done() -> bool:
            reconciler.step()
            for name in fake.names("Deployment"):
                fake.set_ready(name)  # the kubelet: pods pass their readiness probe
            ready = [r for r in store.replicas() if r.state == "ready"]
            return len(ready) == want_ready and len(store.replicas()) == want_ready

        wait_until(done, 20, f"{want_ready} ready replicas", every_s=0.1)

    try:
        fleet.apply(documents(kubeconfig, model, 2, "info"), author="t", message="", dry_run=False)
        converge(2)
        [first] = fake.names("Deployment")
        assert (fake.get("Deployment", first) or {})["spec"]["replicas"] == 2
        assert {r.endpoint for r in store.replicas()} == {"http://fraud.ml.svc.cluster.local"}

        fleet.apply(documents(kubeconfig, model, 3, "info"), author="t", message="", dry_run=False)
        converge(3)
        assert fake.names("Deployment") == [first]  # scaling stays in the group

        fleet.apply(documents(kubeconfig, model, 3, "debug"), author="t", message="", dry_run=False)
        converge(3)  # a new env is a new spec hash: a rolling update onto a second Deployment
        [second] = fake.names("Deployment")
        assert second != first and (fake.get("Deployment", second) or {})["spec"]["replicas"] == 3

        fleet.apply(documents(kubeconfig, model, 3, "debug")[:1], author="t", message="", dry_run=False)
        wait_until(lambda: reconciler.step() is not None and not fake.names("Deployment"), 20, "removal")
        driver = reconciler.driver("eks-use1")
        assert isinstance(driver, KubernetesDriver)
        assert driver.collect_garbage() == [("Service", "fraud")]  # due every 30 s; now, for the test
        wait_until(lambda: reconciler.step() is not None and not store.replicas(), 10, "no replica recorded")
    finally:
        reconciler.close()
