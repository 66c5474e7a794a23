"""From a group's Deployment and its pods to per-replica statuses (pure).

Pods of one Deployment are interchangeable, so replica ids are matched to pod states by count: of the
ids recorded on the Deployment (sorted), the first `ready pods` are ready, then as many as there are
broken pods (or pods the ReplicaSet could not create, e.g. over quota) are failed with the reason
Kubernetes gives, and the rest are starting. Scaling down lets Kubernetes pick the pod to remove, and
it prefers unready ones — the same preference as the controller's.
"""

from __future__ import annotations

from typing import Any

from polycloud.drivers.base import ReplicaStatus
from polycloud.drivers.kubernetes.manifests import (
    HASH_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    SERVICE_LABEL,
    Manifest,
    replica_ids,
)

# Container waiting reasons that will not clear by waiting: report the replica failed.
BROKEN = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def group_statuses(
    cluster: str, deployment: Manifest, pods: list[Manifest], endpoint: str
) -> list[ReplicaStatus]:
    """Statuses of the replica ids recorded on `deployment`, given the pods it owns."""
    meta = deployment.get("metadata", {})
    labels: dict[str, str] = meta.get("labels") or {}
    ids = sorted(replica_ids(deployment))
    live = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
    ready = sum(1 for p in live if _pod_ready(p))
    broken = [why for p in live if (why := _pod_broken(p))]
    missing = max(0, len(ids) - len(live))
    cannot_create = _replica_failure(deployment)
    if cannot_create and missing:
        broken += [cannot_create] * missing
    pending = next((why for p in live if (why := _pod_pending(p))), "")
    statuses = []
    for i, replica_id in enumerate(ids):
        state, message = "starting", pending
        if i < ready:
            state, message = "ready", ""
        elif i - ready < len(broken):
            state, message = "failed", broken[i - ready]
        statuses.append(
            ReplicaStatus(
                id=replica_id,
                service=labels.get(SERVICE_LABEL, ""),
                cluster=cluster,
                revision=_int(labels.get(REVISION_LABEL)),
                role=labels.get(ROLE_LABEL, "active"),
                spec_hash=labels.get(HASH_LABEL, ""),
                state=state,  # type: ignore[arg-type]  # one of the three literals above
                endpoint=endpoint,
                message=message,
            )
        )
    return statuses


def belongs(pod: Manifest, deployment: Manifest) -> bool:
    """Whether `pod` is one of `deployment`'s (its selector's labels all match)."""
    want: dict[str, str] = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    have: dict[str, str] = pod.get("metadata", {}).get("labels") or {}
    return bool(want) and all(have.get(k) == v for k, v in want.items())


def _pod_ready(pod: Manifest) -> bool:
    conditions: list[dict[str, Any]] = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _pod_broken(pod: Manifest) -> str:
    """Why the pod will not become ready by waiting ('' when it may)."""
    status = pod.get("status", {})
    if status.get("phase") == "Failed":
        return f"pod {_name(pod)} failed: {status.get('reason', '')} {status.get('message', '')}".strip()
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in BROKEN:
            last = ((container.get("lastState") or {}).get("terminated") or {}).get("message", "")
            detail = waiting.get("message") or last
            return f"pod {_name(pod)}: {waiting['reason']}: {detail}".rstrip(": ")
    return ""


def _pod_pending(pod: Manifest) -> str:
    """Why a pod waits to be scheduled (say, no node with a free GPU), for the replica's message."""
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"pod {_name(pod)}: {c.get('reason', 'Unschedulable')}: {c.get('message', '')}"
    return ""


def _replica_failure(deployment: Manifest) -> str:
    """The Deployment's ReplicaFailure condition (pods it cannot create: quota, admission), or ''."""
    for c in deployment.get("status", {}).get("conditions") or []:
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
            return f"{c.get('reason', 'FailedCreate')}: {c.get('message', '')}"
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return f"ProgressDeadlineExceeded: {c.get('message', '')}"
    return ""


def _name(pod: Manifest) -> str:
    return str(pod.get("metadata", {}).get("name", "?"))


def _int(text: str | None) -> int:
    try:
        return int(text or "0")
    except ValueError:
        return 0
