"""Garbage collection: delete polycloud's objects of a cluster that nothing declared uses any more.

"Declared" is read off the cluster itself, so that a control plane that never saw an object can still
clean it up: a Deployment with no replica ids is empty; a Service whose service has no Deployment
left, and a Secret no remaining Deployment refers to (by env, or mounted: the TLS Secrets), are
orphans. Only objects carrying the owner labels (`app.kubernetes.io/managed-by: polycloud` and this
cluster's label) are ever considered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from polycloud.drivers.kubernetes import manifests as m
from polycloud.drivers.kubernetes.api import KubeApi

_log = logging.getLogger(__name__)


def collect_garbage(api: KubeApi, cluster: str) -> list[tuple[str, str]]:
    """Delete the cluster's orphaned objects (fresh lists, not caches); the (kind, name)s deleted."""
    selector = m.owner_selector(cluster)
    deployments, _ = api.list("Deployment", selector)
    live = [d for d in deployments if m.replica_ids(d)]
    services = {_labels(d).get(m.SERVICE_LABEL) for d in live}
    secrets = {ref for d in live for ref in _secret_refs(d)}
    doomed = [("Deployment", _name(d)) for d in deployments if not m.replica_ids(d)]
    for svc in api.list("Service", selector)[0]:
        if _labels(svc).get(m.SERVICE_LABEL) not in services:
            doomed.append(("Service", _name(svc)))
    for sec in api.list("Secret", selector)[0]:
        if _name(sec) not in secrets:
            doomed.append(("Secret", _name(sec)))
    deleted = []
    for kind, name in doomed:
        if api.delete(kind, name):
            _log.info("cluster %s: deleted %s %s (no longer declared)", cluster, kind, name)
            deleted.append((kind, name))
    return deleted


def _secret_refs(deployment: m.Manifest) -> Iterator[str]:
    """The Secrets a Deployment's pods read: env `secretKeyRef`s and mounted volumes (TLS)."""
    spec: dict[str, Any] = deployment.get("spec", {}).get("template", {}).get("spec", {})
    for volume in spec.get("volumes") or []:
        name = (volume.get("secret") or {}).get("secretName")
        if name:
            yield str(name)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for var in container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref.get("name"):
                yield str(ref["name"])


def _labels(obj: m.Manifest) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def _name(obj: m.Manifest) -> str:
    return str(obj.get("metadata", {}).get("name", ""))
