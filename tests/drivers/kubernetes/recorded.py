"""Answers of kube-apiserver as recorded: Status objects, pod statuses, routing and selectors.

Part of the recorded stand-in (`fake_api`): the bodies below follow kube-apiserver 1.30's formats and
messages (Status objects with reason, message, details and code; pod status blocks as the kubelet
reports them), with our names and numbers.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

Obj = dict[str, Any]

# (url group prefix, plural) → (kind, apiVersion, group); the two API groups the driver talks to.
RESOURCES = {
    ("api/v1", "pods"): ("Pod", "v1", ""),
    ("api/v1", "services"): ("Service", "v1", ""),
    ("api/v1", "secrets"): ("Secret", "v1", ""),
    ("apis/apps/v1", "deployments"): ("Deployment", "apps/v1", "apps"),
}


def route(path: str) -> tuple[tuple[str, str, str], str, str | None] | None:
    parts = path.strip("/").split("/")
    for prefix_len in (2, 3):
        prefix = "/".join(parts[:prefix_len])
        rest = parts[prefix_len:]
        if len(rest) >= 3 and rest[0] == "namespaces" and (prefix, rest[2]) in RESOURCES:
            name = rest[3] if len(rest) > 3 else None
            return RESOURCES[(prefix, rest[2])], rest[1], name
    return None


def selector(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def matches(obj: Obj, wanted: dict[str, str]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def ready(pod: Obj) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def pod_status(*, ready: bool, waiting: tuple[str, str] | None = None) -> Obj:
    state: Obj = {"running": {"startedAt": "2026-11-23T21:00:05Z"}}
    if waiting:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    flag = "True" if ready else "False"
    return {
        "phase": "Running" if ready or waiting else "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": flag}],
        "containerStatuses": [
            {
                "name": "server",
                "ready": ready,
                "restartCount": 1 if waiting else 0,
                "state": state,
                "image": "x",
                "imageID": "",
                "started": ready,
            }
        ],
    }


def merge_patch(target: Obj, patch: Obj) -> Obj:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = value
    return target


def uid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def plural_of(kind: str, group: str) -> str:
    plural = kind.lower() + "s"
    return f"{plural}.{group}" if group else plural


def respond(code: int, obj: Obj) -> web.Response:
    return web.Response(status=code, text=json.dumps(obj), content_type="application/json")


def status(code: int, reason: str, message: str, details: Obj | None = None) -> web.Response:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return respond(code, body)


def not_found(kind: str, group: str, name: str) -> web.Response:
    plural = plural_of(kind, group)
    return status(
        404,
        "NotFound",
        f'{plural} "{name}" not found',
        {"name": name, "group": group, "kind": plural.split(".")[0]},
    )


def conflict(kind: str, group: str, name: str) -> web.Response:
    plural = plural_of(kind, group)
    return status(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": group, "kind": plural.split(".")[0]},
    )
