"""Kubernetes manifests of a served model (pure; no I/O): Deployment, Service and env Secrets.

One Deployment per replica group — (service, cluster, spec hash) — whose `replicas` is the number of
replica ids the controller started in it (kept in an annotation); one Service per (service, cluster)
selecting every pod of the service, so old and new pods both serve during a rolling update.
The driver applies exactly these dicts, and `polycloud export k8s` writes them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from polycloud.spec.models import EnvVar, ModelRef, Resources

Manifest = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
OWNER = "polycloud"
SERVICE_LABEL = "polycloud.dev/service"
REVISION_LABEL = "polycloud.dev/revision"
CLUSTER_LABEL = "polycloud.dev/cluster"
HASH_LABEL = "polycloud.dev/spec-hash"
ROLE_LABEL = "polycloud.dev/role"
REPLICAS_ANNOTATION = "polycloud.dev/replica-ids"
SECRET_ANNOTATION = "polycloud.dev/secret"
SECRET_KEY = "value"
PORT = 8000
MODELS_DIR = "/models"
GRACE_S = 30

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
# Fetches a `model.uri` into the shared volume; the server checks the sha256 when it loads the file.
_FETCH = "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])"


@dataclass(frozen=True)
class Target:
    """Where manifests go: the polycloud cluster, its namespace and the model-server image."""

    cluster: str
    namespace: str
    image: str


@dataclass(frozen=True)
class Serving:
    """What one replica group serves: everything a Deployment is made of."""

    service: str
    revision: int
    role: str
    spec_hash: str
    model: ModelRef
    resources: Resources = field(default_factory=Resources)
    env: tuple[EnvVar, ...] = ()


def owner_labels(cluster: str) -> dict[str, str]:
    """The labels that mark an object as polycloud's for one cluster (the garbage collector's key)."""
    return {MANAGED_BY: OWNER, CLUSTER_LABEL: cluster}


def owner_selector(cluster: str) -> str:
    return ",".join(f"{k}={v}" for k, v in owner_labels(cluster).items())


def deployment_name(service: str, spec_hash: str) -> str:
    return f"{service}-{spec_hash[:10].lower()}"


def secret_name(secret: str) -> str:
    """The Kubernetes Secret holding polycloud secret `secret` (a DNS name; hashed when it had to change)."""
    clean = _NOT_DNS.sub("-", secret.lower()).strip("-")[:40] or "secret"
    if clean != secret:
        clean = f"{clean}-{hashlib.sha256(secret.encode()).hexdigest()[:8]}"
    return f"polycloud-{clean}"


def deployment(target: Target, serving: Serving, replica_ids: list[str]) -> Manifest:
    """The group's Deployment, running one pod per id in `replica_ids` (which it records)."""
    ids = sorted(replica_ids)
    selector = {**owner_labels(target.cluster), SERVICE_LABEL: serving.service, HASH_LABEL: serving.spec_hash}
    labels = {**selector, REVISION_LABEL: str(serving.revision), ROLE_LABEL: serving.role}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(serving.service, serving.spec_hash),
            "namespace": target.namespace,
            "labels": labels,
            "annotations": {REPLICAS_ANNOTATION: json.dumps(ids)},
        },
        "spec": {
            "replicas": len(ids),
            "selector": {"matchLabels": selector},
            # The controller rolls between groups; within one, pods are alike: surge one, lose none.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec(target, serving)},
        },
    }


def replica_ids(manifest: Manifest) -> list[str]:
    """The replica ids recorded on a Deployment (none when the annotation is missing or garbled)."""
    raw = (manifest.get("metadata", {}).get("annotations") or {}).get(REPLICAS_ANNOTATION, "[]")
    try:
        ids = json.loads(raw)
    except ValueError:
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def pod_spec(target: Target, serving: Serving) -> Manifest:
    model_file = posixpath.join(MODELS_DIR, _model_file_name(serving.model))
    spec: Manifest = {
        "terminationGracePeriodSeconds": GRACE_S,
        "containers": [_server_container(target, serving, model_file)],
    }
    if serving.model.uri is not None:
        spec["initContainers"] = [
            {
                "name": "fetch-model",
                "image": target.image,
                "command": ["python", "-c", _FETCH, serving.model.uri, model_file],
                "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}],
            }
        ]
        spec["volumes"] = [{"name": "models", "emptyDir": {}}]
    if _accelerator_resource(serving.resources) is not None:
        # GPU node pools are usually tainted so that only pods asking for GPUs land there.
        name = _accelerator_resource(serving.resources)
        spec["tolerations"] = [{"key": name, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def _server_container(target: Target, serving: Serving, model_file: str) -> Manifest:
    args = ["--model", model_file, "--name", serving.service, "--host", "0.0.0.0", "--port", str(PORT)]
    if serving.model.sha256:
        args += ["--sha256", serving.model.sha256]
    args += ["--replica-id", "$(POD_NAME)", "--cluster", target.cluster]
    args += ["--revision", str(serving.revision), "--spec-hash", serving.spec_hash]
    container: Manifest = {
        "name": "server",
        "image": target.image,
        "command": ["python", "-m", "polycloud.serving"],
        "args": args,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": env_vars(serving.env),
        "resources": resources(serving.resources),
        "readinessProbe": _probe("/v2/health/ready", period_s=2, failures=3),
        "livenessProbe": _probe("/v2/health/live", period_s=10, failures=3),
        # Loading a large model may take minutes: liveness starts counting only once it is up.
        "startupProbe": _probe("/v2/health/live", period_s=5, failures=120),
    }
    if serving.model.uri is not None:
        container["volumeMounts"] = [{"name": "models", "mountPath": MODELS_DIR, "readOnly": True}]
    return container


def env_vars(env: tuple[EnvVar, ...] | list[EnvVar]) -> list[Manifest]:
    """Literal values inline; secrets only as `secretKeyRef` (a value never enters a manifest)."""
    out: list[Manifest] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    for var in env:
        if var.secret is not None:
            ref = {"name": secret_name(var.secret), "key": SECRET_KEY}
            out.append({"name": var.name, "valueFrom": {"secretKeyRef": ref}})
        else:
            out.append({"name": var.name, "value": var.value or ""})
    return out


def resources(res: Resources) -> Manifest:
    """Requests and limits: CPU requested (not limited: throttling hurts latency), memory and
    accelerators requested and limited (extended resources must have requests equal to limits)."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if res.vcpus > 0:
        requests["cpu"] = _quantity(res.vcpus)
    if res.memoryGiB > 0:
        requests["memory"] = limits["memory"] = f"{_quantity(res.memoryGiB * 1024)}Mi"
    name = _accelerator_resource(res)
    if name is not None:
        count = str(math.ceil(res.accelerators))  # devices are whole; a fraction asks for one
        requests[name] = limits[name] = count
    out: Manifest = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _accelerator_resource(res: Resources) -> str | None:
    """The device plugin's resource name: TPUs on GKE, AMD Instinct, else NVIDIA (GPU operator)."""
    if res.accelerator is None:
        return None
    name = res.accelerator.lower()
    if name.startswith("tpu"):
        return "google.com/tpu"
    if name.startswith(("mi", "amd")):
        return "amd.com/gpu"
    return "nvidia.com/gpu"


def _quantity(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{math.ceil(x * 1000)}m"


def _probe(path: str, *, period_s: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _model_file_name(model: ModelRef) -> str:
    source = model.path or (model.uri or "").split("?", 1)[0]
    return posixpath.basename(source.replace("\\", "/")) or "model.onnx"


def service(target: Target, name: str) -> Manifest:
    """The Service of (service, cluster): a stable cluster DNS name over every pod of the service."""
    labels = {**owner_labels(target.cluster), SERVICE_LABEL: name}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(labels),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def service_url(target: Target, name: str) -> str:
    return f"http://{name}.{target.namespace}.svc.cluster.local"


def secret(target: Target, secret: str, value: str) -> Manifest:
    """A Secret holding one polycloud secret's value under key `value` (applied by the driver only)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(secret),
            "namespace": target.namespace,
            "labels": owner_labels(target.cluster),
            "annotations": {SECRET_ANNOTATION: secret},
        },
        "type": "Opaque",
        # `data`, not `stringData`: stringData is write-only, so server-side apply would never see
        # its own field again and report drift forever.
        "data": {SECRET_KEY: base64.b64encode(value.encode()).decode()},
    }
