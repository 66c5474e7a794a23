"""Builders of spec documents for the cost tests: private sites with hand-picked prices."""

from __future__ import annotations

from typing import Any

from polycloud.catalog import load_catalog
from polycloud.cost import PriceBook
from polycloud.spec.models import Cluster, Dataset, Job, Service


def cluster(
    name: str,
    provider: str,
    hourly: float,
    *,
    spot: float | None = None,
    egress: float = 0.0,
    region: str = "dc1",
) -> Cluster:
    """A private site with one 8-vCPU instance type and an internet egress price."""
    return Cluster.model_validate(
        {
            "apiVersion": "polycloud/v1",
            "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {
                "provider": provider,
                "region": region,
                "driver": {"type": "local"},
                "location": {"lat": 50.0, "lon": 8.0},
                "instances": [
                    {"name": "node", "vcpus": 8, "memoryGiB": 32, "hourlyUSD": hourly, "spotHourlyUSD": spot}
                ],
                "network": {"internetEgressUSDPerGB": egress, "interRegionUSDPerGB": egress / 2},
            },
        }
    )


def prices(*clusters: Cluster) -> PriceBook:
    return PriceBook({c.metadata.name: c for c in clusters}, load_catalog())


def service(
    name: str, *, replicas: int = 2, reads: list[dict[str, Any]] | None = None, **spec: Any
) -> Service:
    body: dict[str, Any] = {"model": {"path": "/m.onnx"}, "resources": {"vcpus": 2}, "replicas": replicas}
    return Service.model_validate(
        {
            "apiVersion": "polycloud/v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": {"team": "risk"}},
            "spec": body | {"reads": reads or []} | spec,
        }
    )


def job(name: str, *, nodes: int = 2, hours: float = 10, spot: bool = False) -> Job:
    return Job.model_validate(
        {
            "apiVersion": "polycloud/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"resources": {"vcpus": 4}, "nodes": nodes, "hours": hours, "spot": spot},
        }
    )


def dataset(name: str, where: str, size_gb: float) -> Dataset:
    return Dataset.model_validate(
        {
            "apiVersion": "polycloud/v1",
            "kind": "Dataset",
            "metadata": {"name": name},
            "spec": {"cluster": where, "sizeGB": size_gb},
        }
    )


def assignment(
    cluster: str, hourly: float, *, role: str = "active", replicas: int = 2, cost: float = 0.0
) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "role": role,
        "replicas": replicas,
        "instanceType": "node",
        "hourlyUSD": hourly,
        "spot": False,
        "costUSD": cost,
    }
