"""Training jobs as manifests (pure): a Kubernetes Job, or an Argo Workflow (`export --format argo`).

Job fields that arrive with managed training (`command`, `env`, `checkpoint`, `recovery`) are read with
`getattr`, so a spec without them still exports. A job's checkpoint directory is a PersistentVolumeClaim
of its own, so a restarted pod resumes from what the previous one wrote.
"""

from __future__ import annotations

from typing import Any

from polycloud.drivers.kubernetes.manifests import (
    Manifest,
    Target,
    env_vars,
    owner_labels,
    resources,
)
from polycloud.spec.models import EnvVar, Job

JOB_LABEL = "polycloud.dev/job"
CHECKPOINT_DIR = "/checkpoint"
CHECKPOINT_SIZE = "10Gi"
DEFAULT_RESTARTS = 3

# Each provider's managed node pools label (and AKS taints) spot nodes differently.
SPOT_NODES: dict[str, tuple[dict[str, str], list[Manifest]]] = {
    "aws": ({"eks.amazonaws.com/capacityType": "SPOT"}, []),
    "gcp": ({"cloud.google.com/gke-spot": "true"}, []),
    "azure": (
        {"kubernetes.azure.com/scalesetpriority": "spot"},
        [
            {
                "key": "kubernetes.azure.com/scalesetpriority",
                "operator": "Equal",
                "value": "spot",
                "effect": "NoSchedule",
            }
        ],
    ),
}


def job_labels(target: Target, job: Job) -> dict[str, str]:
    return {**owner_labels(target.cluster), JOB_LABEL: job.metadata.name}


def checkpoint_claim(target: Target, job: Job) -> Manifest | None:
    """The PVC that carries a job's checkpoints across pod restarts; None without `checkpoint`."""
    if getattr(job.spec, "checkpoint", None) is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": f"{job.metadata.name}-checkpoint",
            "namespace": target.namespace,
            "labels": job_labels(target, job),
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": CHECKPOINT_SIZE}}},
    }


def batch_job(target: Target, job: Job, provider: str) -> Manifest:
    """A Kubernetes Job: `nodes` pods at once (Indexed, so each knows its rank), retried per `recovery`."""
    nodes = job.spec.nodes
    labels = job_labels(target, job)
    pod = _pod_spec(target, job, provider, attempt=None)
    pod["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job.metadata.name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "completions": nodes,
            "parallelism": nodes,
            "completionMode": "Indexed",
            "backoffLimit": _max_restarts(job),
            "activeDeadlineSeconds": max(1, int(job.spec.hours * 3600 * 2)),  # twice the planned run
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def argo_workflow(target: Target, job: Job, provider: str) -> Manifest:
    """An Argo Workflow running the job on `nodes` pods in parallel, retried per `recovery`."""
    labels = job_labels(target, job)
    nodes = job.spec.nodes
    pod = _pod_spec(target, job, provider, attempt="{{retries}}")
    container = pod["containers"][0]
    container["env"].append({"name": "POLYCLOUD_NODE_RANK", "value": "{{inputs.parameters.rank}}"})
    train: Manifest = {
        "name": "train",
        "inputs": {"parameters": [{"name": "rank"}]},
        "retryStrategy": {"limit": str(_max_restarts(job)), "retryPolicy": "Always"},
        "container": container,
    }
    for key in ("nodeSelector", "tolerations", "volumes"):
        if key in pod:
            train[key] = pod[key]
    step = {
        "name": "node",
        "template": "train",
        "arguments": {"parameters": [{"name": "rank", "value": "{{item}}"}]},
        "withSequence": {"count": str(nodes)},
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": job.metadata.name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "entrypoint": "main",
            "podMetadata": {"labels": dict(labels)},
            "templates": [{"name": "main", "steps": [[step]]}, train],
        },
    }


def _pod_spec(target: Target, job: Job, provider: str, attempt: str | None) -> Manifest:
    container: Manifest = {
        "name": "train",
        "image": target.image,
        "env": _env(job, attempt),
        "resources": resources(job.spec.resources),
    }
    command = getattr(job.spec, "command", None)
    if command:
        container["command"] = list(command)
    pod: Manifest = {"containers": [container]}
    if getattr(job.spec, "checkpoint", None) is not None:
        container["volumeMounts"] = [{"name": "checkpoint", "mountPath": CHECKPOINT_DIR}]
        claim = {"claimName": f"{job.metadata.name}-checkpoint"}
        pod["volumes"] = [{"name": "checkpoint", "persistentVolumeClaim": claim}]
    selector, tolerations = SPOT_NODES.get(provider, ({}, [])) if job.spec.spot else ({}, [])
    tolerations = list(tolerations)
    gpu = next((k for k in container["resources"].get("limits", {}) if k.endswith("/gpu")), None)
    if gpu is not None:
        tolerations.append({"key": gpu, "operator": "Exists", "effect": "NoSchedule"})
    if selector:
        pod["nodeSelector"] = dict(selector)
    if tolerations:
        pod["tolerations"] = tolerations
    return pod


def _env(job: Job, attempt: str | None) -> list[Manifest]:
    declared: list[EnvVar] = list(getattr(job.spec, "env", None) or [])
    env = env_vars(declared)
    checkpoint: Any = getattr(job.spec, "checkpoint", None)
    if checkpoint is not None:
        env.append({"name": "POLYCLOUD_CHECKPOINT_DIR", "value": CHECKPOINT_DIR})
        every = getattr(checkpoint, "everySeconds", None)
        if every is not None:
            env.append({"name": "POLYCLOUD_CHECKPOINT_EVERY_SECONDS", "value": f"{every:g}"})
    if attempt is not None:
        env.append({"name": "POLYCLOUD_JOB_ATTEMPT", "value": attempt})
    return env


def _max_restarts(job: Job) -> int:
    recovery: Any = getattr(job.spec, "recovery", None)
    value = getattr(recovery, "maxRestarts", None)
    return int(value) if isinstance(value, int) else DEFAULT_RESTARTS
