"""`polycloud export k8s`: the manifests the Kubernetes driver would apply, planned in-process.

For every Service assignment on a kubernetes cluster: its Deployment (replica ids as the controller
would first name them), its Service object; for every Job on one: a Kubernetes Job (or an Argo
Workflow) and its checkpoint claim. Secrets are referenced, never written: their values belong in the
cluster's own secret store (see docs/kubernetes.md). Clusters with another driver are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from polycloud.catalog import Catalog
from polycloud.drivers.kubernetes import jobs, manifests
from polycloud.drivers.kubernetes.manifests import Manifest
from polycloud.errors import UserError
from polycloud.placement import Plan, plan_fleet
from polycloud.services.applying import pin_model_digests
from polycloud.spec import Fleet
from polycloud.spec.models import Cluster, Job, Service
from polycloud.state import content_hash

ExportFormat = Literal["k8s", "argo"]


@dataclass
class Export:
    """Manifests per cluster, clusters left out (not kubernetes), and workloads that could not be placed."""

    manifests: dict[str, list[Manifest]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    infeasible: list[str] = field(default_factory=list)

    def files(self) -> Iterator[tuple[Path, Manifest]]:
        """(relative path `<cluster>/<kind>-<name>.yaml`, manifest) for every manifest."""
        for cluster, items in sorted(self.manifests.items()):
            for item in items:
                name = f"{item['kind'].lower()}-{item['metadata']['name']}.yaml"
                yield Path(cluster) / name, item


def export_fleet(fleet: Fleet, catalog: Catalog, fmt: ExportFormat = "k8s") -> Export:
    """Plan `fleet` and build the manifests of its kubernetes clusters.

    Raises:
        UserError: A model cannot be read (its digest is pinned in the manifests), or a kubernetes
            cluster without `driver.image`.
    """
    pin_model_digests(fleet)
    plan = plan_fleet(fleet, catalog)
    result = Export(infeasible=[f"{i.kind} {i.workload}" for i in plan.infeasible])
    targets = {}
    for name, cluster in fleet.clusters.items():
        if cluster.spec.driver.type != "kubernetes":
            result.skipped.append(name)
            continue
        targets[name] = _target(cluster)
    for service in fleet.services.values():
        _add_service(result, targets, plan, service)
    for job in fleet.jobs.values():
        _add_job(result, targets, plan, job, fleet, fmt)
    return result


def write_export(export: Export, out: Path) -> list[Path]:
    """Write every manifest as its own YAML file under `out`; the paths written."""
    written = []
    for relative, item in export.files():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(manifest_yaml(item))
        written.append(path)
    return written


def manifest_yaml(item: Manifest) -> str:
    """One manifest as YAML, keys in the order written and without anchors."""
    return yaml.dump(item, Dumper=_PlainDumper, sort_keys=False)


class _PlainDumper(yaml.SafeDumper):
    """No `&id001` anchors: every manifest reads on its own, as people write them."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _target(cluster: Cluster) -> manifests.Target:
    driver = cluster.spec.driver
    if not driver.image:
        raise UserError(
            f"Cluster {cluster.metadata.name}: driver.image is required to export kubernetes manifests"
        )
    return manifests.Target(
        cluster=cluster.metadata.name, namespace=driver.namespace or "default", image=driver.image
    )


def _add_service(result: Export, targets: dict[str, manifests.Target], plan: Plan, service: Service) -> None:
    placement = plan.placement(service.metadata.name)
    for assignment in placement.assignments if placement else []:
        target = targets.get(assignment.cluster)
        if target is None:
            continue
        serving = serving_of(service, assignment.role)
        ids = [f"{service.metadata.name}-{assignment.cluster}-{i}" for i in range(assignment.replicas)]
        items = result.manifests.setdefault(assignment.cluster, [])
        items.append(manifests.deployment(target, serving, ids))
        items.append(manifests.service(target, service.metadata.name))


def serving_of(service: Service, role: str) -> manifests.Serving:
    """A Service's replica group as exported. The spec-hash label fingerprints what the pods run
    (model, env with secret *names*, role); the live one also covers secret values, so it differs
    when the service reads secrets."""
    spec = service.spec
    model = spec.model
    fingerprint = {
        "model": (model.path or model.uri) if model is not None else None,
        "digest": (model.sha256 if model is not None else None) or "",
        "env": [var.model_dump() for var in spec.env],
        "role": role,
        "resources": spec.resources.model_dump(),
    }
    if spec.runtime is not None or spec.protocol != "oip-v2":
        fingerprint |= {
            "protocol": spec.protocol,
            "runtime": spec.runtime.model_dump() if spec.runtime else None,
        }
    return manifests.Serving(
        service=service.metadata.name,
        revision=0,
        role=role,
        spec_hash=content_hash(fingerprint)[:16],
        model=spec.model,
        resources=spec.resources,
        env=tuple(spec.env),
        protocol=spec.protocol,
        runtime=spec.runtime,
    )


def _add_job(
    result: Export,
    targets: dict[str, manifests.Target],
    plan: Plan,
    job: Job,
    fleet: Fleet,
    fmt: ExportFormat,
) -> None:
    placement = plan.placement(job.metadata.name)
    if placement is None or not placement.assignments:
        return
    cluster = placement.assignments[0].cluster
    target = targets.get(cluster)
    if target is None:
        return
    provider = fleet.clusters[cluster].spec.provider
    items = result.manifests.setdefault(cluster, [])
    claim = jobs.checkpoint_claim(target, job)
    if claim is not None:
        items.append(claim)
    if fmt == "argo":
        items.append(jobs.argo_workflow(target, job, provider))
    else:
        items.append(jobs.batch_job(target, job, provider))
