"""Kubernetes manifests of a served model (pure; no I/O): Deployment, Service, env and TLS Secrets.

One Deployment per replica group — (service, cluster, spec hash) — whose `replicas` is the number of
replica ids the controller started in it (kept in an annotation); one Service per (service, cluster)
selecting every pod of the service, so old and new pods both serve during a rolling update.
The driver applies exactly these dicts, and `polycloud export k8s` writes them.

With the fleet's mutual TLS (`Serving.tls`), each (service, cluster) also has a TLS Secret
(`tls_secret`: type `kubernetes.io/tls`, keys `tls.crt`, `tls.key` and `ca.crt`) that its pods mount
read-only at `TLS_DIR` as the `cert.pem`, `key.pem` and `ca.pem` the model server reads with
`--tls-dir`; the server then answers only mTLS on its main port (named `https`, Service port 443), so
the kubelet's probes go to a plain-HTTP health port (`--health-port`, named `health`) that answers
nothing but `/v2/health/live` and `/v2/health/ready`. Without TLS the manifests are as before.
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

from polycloud.spec.models import EnvVar, ModelRef, Resources, Runtime

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
HEALTH_PORT = 8001
"""The replica's plain-HTTP health port (with TLS only): the kubelet's probes cannot present a client
certificate, so they cannot reach the mTLS port."""
TLS_DIR = "/etc/polycloud/tls"
"""Where pods mount their TLS Secret (the model server's `--tls-dir`)."""
IDENTITY_DIR = "/var/run/secrets/polycloud/identity"
"""Where pods mount their identity token Secret (key `token`: `POLYCLOUD_IDENTITY_TOKEN_FILE`)."""
TLS_KEYS = {"tls.crt": "cert.pem", "tls.key": "key.pem", "ca.crt": "ca.pem"}
"""TLS Secret key → file name in `TLS_DIR` (the names `polycloud.pki.contexts.TlsFiles` reads)."""
MODELS_DIR = "/models"
GRACE_S = 30

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
# Fetches a `model.uri` into the shared volume; the server checks the sha256 when it loads the file.
FETCHED_SCHEMES = ("http", "https", "file")
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
    model: ModelRef | None
    resources: Resources = field(default_factory=Resources)
    env: tuple[EnvVar, ...] = ()
    tls: bool = False
    """Serve the fleet's mutual TLS from the service's TLS Secret (the probes then use the health port)."""
    protocol: str = "oip-v2"
    runtime: Runtime | None = None
    """The user's server image: it runs beside polycloud's sidecar, which relays to it (`runtime_pod`)."""
    identity: bool = False
    """Mount the service's identity token Secret (`identity_secret_name`) for the model server."""


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


def tls_secret_name(service: str) -> str:
    """The TLS Secret of a service's replicas. The dot keeps it apart from every `secret_name`, which
    never has one, so no polycloud secret can be named onto it."""
    clean = _NOT_DNS.sub("-", service.lower()).strip("-")[:40] or "service"
    if clean != service:
        clean = f"{clean}-{hashlib.sha256(service.encode()).hexdigest()[:8]}"
    return f"polycloud-tls.{clean}"


def identity_secret_name(service: str) -> str:
    """The Secret holding a service's workload identity token (dotted apart from `secret_name`s)."""
    return tls_secret_name(service).replace("polycloud-tls.", "polycloud-identity.", 1)


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
    model = serving.model
    model_file = posixpath.join(MODELS_DIR, _model_file_name(model)) if model is not None else ""
    if serving.runtime is not None and serving.runtime.image is not None:
        containers = runtime_containers(target, serving, serving.runtime, serving.runtime.image, model_file)
    else:
        containers = [_server_container(target, serving, model_file)]
    spec: Manifest = {"terminationGracePeriodSeconds": GRACE_S, "containers": containers}
    volumes: list[Manifest] = []
    if fetched(model):
        assert model is not None and model.uri is not None
        spec["initContainers"] = [
            {
                "name": "fetch-model",
                "image": target.image,
                "command": ["python", "-c", _FETCH, model.uri, model_file],
                "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}],
            }
        ]
        volumes.append({"name": "models", "emptyDir": {}})
    if serving.tls:
        # No subPath: the kubelet then swaps renewed files in place and the server reloads them.
        items = [{"key": key, "path": path} for key, path in TLS_KEYS.items()]
        volumes.append(
            {"name": "tls", "secret": {"secretName": tls_secret_name(serving.service), "items": items}}
        )
    if serving.identity:  # no subPath either: renewed tokens reach running pods
        token_items = [{"key": "token", "path": "token"}]
        secret = {"secretName": identity_secret_name(serving.service), "items": token_items}
        volumes.append({"name": "identity", "secret": secret})
    if volumes:
        spec["volumes"] = volumes
    if _accelerator_resource(serving.resources) is not None:
        # GPU node pools are usually tainted so that only pods asking for GPUs land there.
        name = _accelerator_resource(serving.resources)
        spec["tolerations"] = [{"key": name, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def fetched(model: ModelRef | None) -> bool:
    """Whether the pod's init container downloads the model into `MODELS_DIR` (an http(s) URI; other
    schemes, such as s3:// or gs://, are handed to a runtime as they are, for it to read itself)."""
    return model is not None and model.uri is not None and model.uri.split("://", 1)[0] in FETCHED_SCHEMES


def runtime_containers(
    target: Target, serving: Serving, runtime: Runtime, image: str, model_file: str
) -> list[Manifest]:
    """The user's server (`runtime.image`, with the declared resources, GPUs included) and polycloud's
    sidecar in front of it: the sidecar serves the replica's port (mTLS, health, faults, metrics) and
    relays to the server on the pod's loopback (`--runtime-port`); the server's port is not exposed."""
    model = serving.model
    where = ""
    if model is not None:
        where = model_file if (fetched(model) or model.path is not None) else (model.uri or "")
    values = {"${PORT}": str(runtime.port), "${MODEL}": where}
    args = [_substituted(a, values) for a in runtime.args]
    env = [
        *env_vars(serving.env),
        {"name": "PORT", "value": str(runtime.port)},
        {"name": "MODEL", "value": where},
    ]
    server: Manifest = {
        "name": "model-server",
        "image": image,
        "args": args,
        "env": env,
        "resources": resources(serving.resources),
    }
    if fetched(model):
        server["volumeMounts"] = [{"name": "models", "mountPath": MODELS_DIR, "readOnly": True}]
    if serving.identity:  # the user's server is the workload that calls the clouds
        server["env"].append(_IDENTITY_ENV)
        server.setdefault("volumeMounts", []).append(_IDENTITY_MOUNT)
    sidecar = _server_container(target, serving, "")
    sidecar["name"] = "polycloud-sidecar"
    sidecar["args"] += ["--runtime-port", str(runtime.port), "--readiness-path", runtime.readinessPath]
    sidecar["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    sidecar["env"] = env_vars(())
    sidecar.pop("volumeMounts", None)
    if serving.tls:
        sidecar["volumeMounts"] = [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}]
    return [sidecar, server]


_IDENTITY_ENV: Manifest = {"name": "POLYCLOUD_IDENTITY_TOKEN_FILE", "value": f"{IDENTITY_DIR}/token"}
_IDENTITY_MOUNT: Manifest = {"name": "identity", "mountPath": IDENTITY_DIR, "readOnly": True}


def _substituted(arg: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        arg = arg.replace(placeholder, value)
    return arg


def _server_container(target: Target, serving: Serving, model_file: str) -> Manifest:
    args = ["--name", serving.service, "--host", "0.0.0.0", "--port", str(PORT)]
    if model_file:
        args = ["--model", model_file, *args]
    if serving.model is not None and serving.model.sha256 and serving.runtime is None:
        args += ["--sha256", serving.model.sha256]
    if serving.protocol != "oip-v2":
        args += ["--protocol", serving.protocol]
    args += ["--replica-id", "$(POD_NAME)", "--cluster", target.cluster]
    args += ["--revision", str(serving.revision), "--spec-hash", serving.spec_hash]
    ports = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    probed = "http"
    if serving.tls:
        args += ["--tls-dir", TLS_DIR, "--health-port", str(HEALTH_PORT)]
        ports = [
            {"name": "https", "containerPort": PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ]
        probed = "health"
    container: Manifest = {
        "name": "server",
        "image": target.image,
        "command": ["python", "-m", "polycloud.serving"],
        "args": args,
        "ports": ports,
        "env": env_vars(serving.env),
        "resources": resources(serving.resources),
        "readinessProbe": _probe("/v2/health/ready", probed, period_s=2, failures=3),
        "livenessProbe": _probe("/v2/health/live", probed, period_s=10, failures=3),
        # Loading a large model may take minutes: liveness starts counting only once it is up.
        "startupProbe": _probe("/v2/health/live", probed, period_s=5, failures=120),
    }
    mounts: list[Manifest] = []
    if fetched(serving.model) and model_file:
        mounts.append({"name": "models", "mountPath": MODELS_DIR, "readOnly": True})
    if serving.tls:
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    if serving.identity:
        container["env"] = [*container["env"], _IDENTITY_ENV]
        mounts.append(_IDENTITY_MOUNT)
    if mounts:
        container["volumeMounts"] = mounts
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


def _probe(path: str, port: str, *, period_s: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _model_file_name(model: ModelRef | None) -> str:
    if model is None:
        return ""
    source = model.path or (model.uri or "").split("?", 1)[0]
    return posixpath.basename(source.replace("\\", "/")) or "model.onnx"


def service(target: Target, name: str, *, tls: bool = False) -> Manifest:
    """The Service of (service, cluster): a stable cluster DNS name over every pod of the service
    (port 80 to the pods' `http`; with TLS, 443 to their `https`)."""
    labels = {**owner_labels(target.cluster), SERVICE_LABEL: name}
    port = {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    if tls:
        port = {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(labels),
            "ports": [port],
        },
    }


def service_hosts(target: Target, name: str) -> list[str]:
    """Every name the Service answers to in the cluster (a replica certificate's DNS names)."""
    short = f"{name}.{target.namespace}"
    return [name, short, f"{short}.svc", f"{short}.svc.cluster.local"]


def service_url(target: Target, name: str, *, tls: bool = False) -> str:
    """The endpoint every replica of the service on the cluster is reached at (its Service's)."""
    return f"{'https' if tls else 'http'}://{service_hosts(target, name)[-1]}"


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


def tls_secret(target: Target, service: str, certificate_pem: str, key_pem: str, bundle_pem: str) -> Manifest:
    """The service's TLS Secret: its replicas' certificate, key and trust bundle (applied by the
    driver only; the owner labels let garbage collection remove it with the service)."""
    values = {"tls.crt": certificate_pem, "tls.key": key_pem, "ca.crt": bundle_pem}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": tls_secret_name(service),
            "namespace": target.namespace,
            "labels": {**owner_labels(target.cluster), SERVICE_LABEL: service},
        },
        "type": "kubernetes.io/tls",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


def tls_values(secret: Manifest) -> dict[str, str]:
    """The PEM texts of a TLS Secret read back from the API, by key (undecodable ones left out)."""
    found: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            found[key] = base64.b64decode(value, validate=True).decode()
        except (ValueError, TypeError):
            continue
    return found
