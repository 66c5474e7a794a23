"""A RECORDED STAND-IN for the Kubernetes API server — not a Kubernetes, and not a general fake.

The real API server is a boundary these tests cannot reach (DEVELOPERS.md allows a faithful stand-in
there). This one speaks real HTTP on 127.0.0.1 to the real `kubernetes` client (through a generated
kubeconfig) and plays back the conversation kube-apiserver 1.30 has with it for the endpoints the
driver uses — request shapes and response bodies in the API server's own formats and wording
(`recorded.py`), written from its API conventions, not captured from a live cluster here:
lists (items without kind/apiVersion, a list resourceVersion), watch streams (newline-delimited
events, BOOKMARKs, the stream closed by the server after `timeoutSeconds`, an ERROR event carrying a
410 Expired Status for a compacted resourceVersion), server-side apply (`PATCH` with
`application/apply-patch+yaml`, `fieldManager` required, 201 on create, 409 Conflict when a given
resourceVersion is stale), JSON merge patch, delete (a Success Status; 404 NotFound when gone), 404
for a missing namespace, 403 Forbidden for RBAC and for a full ResourceQuota on
`count/deployments.apps`. A pod quota makes the ReplicaSet fail to create pods, which shows — as on a
real cluster — as a `ReplicaFailure` condition on the Deployment.

The Deployment controller and the kubelet are played by `_sync_pods` (pods appear Pending; `set_ready`
flips their Ready condition as a passing readiness probe would; `crash` puts one in CrashLoopBackOff).
Every request is logged in `requests` (method, path, query, content type, body) for assertions.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from aiohttp import web

from . import recorded
from .recorded import Obj


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


@dataclass
class FakeApiServer:
    """State, recorded-shape answers and knobs (quotas, failures) of the stand-in."""

    namespaces: set[str] = field(default_factory=lambda: {"default", "ml"})
    deployment_quota: int | None = None
    pod_quota: int | None = None
    forbidden: bool = False
    """Answer every request 403 as RBAC would for a service account without rights."""
    compacted_below: int = 0
    """Watches from a resourceVersion below this get a 410 Expired (etcd compaction)."""
    partitioned: bool = False
    """Open watch streams deliver nothing (a network partition; requests still get through)."""
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}  # (kind, namespace, name)
        self.events: list[tuple[int, str, Obj]] = []  # (resourceVersion, type, object)
        self._rv = itertools.count(1000)
        self.lock = threading.RLock()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.closing = threading.Event()

    # ------------------------------------------------------------------------------- running
    def start(self) -> None:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    def stop(self) -> None:
        """Stop listening (idempotent); open watch streams are cut as a dying server would."""
        loop, runner, self._runner = self._loop, self._runner, None
        self.closing.set()
        if loop is not None and runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)

    def kubeconfig(self, path: Path, namespace: str = "ml") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "recorded-token"}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # ------------------------------------------------------------------------------ test knobs
    def get(self, kind: str, name: str, namespace: str = "ml") -> Obj | None:
        with self.lock:
            found = self.objects.get((kind, namespace, name))
            return copy.deepcopy(found) if found else None

    def names(self, kind: str, namespace: str = "ml") -> list[str]:
        with self.lock:
            return sorted(n for (k, ns, n) in self.objects if k == kind and ns == namespace)

    def set_ready(self, deployment: str, count: int | None = None, namespace: str = "ml") -> None:
        """Mark `count` (all when None) of the Deployment's pods Running and Ready, as the kubelet would."""
        with self.lock:
            pods = [p for p in self._pods_of(namespace, deployment) if not recorded.ready(p)]
            for pod in pods[: len(pods) if count is None else count]:
                pod["status"] = recorded.pod_status(ready=True)
                self._touch("MODIFIED", pod)
            self._deployment_status(namespace, deployment)

    def crash(self, deployment: str, namespace: str = "ml") -> None:
        """Put one pod of the Deployment into CrashLoopBackOff (its server exits at start)."""
        with self.lock:
            pod = self._pods_of(namespace, deployment)[0]
            pod["status"] = recorded.pod_status(
                ready=False, waiting=("CrashLoopBackOff", "back-off 10s restarting")
            )
            self._touch("MODIFIED", pod)
            self._deployment_status(namespace, deployment)

    def compact(self) -> None:
        """etcd compaction up to the current revision: older resourceVersions can no longer be watched."""
        with self.lock:
            self.compacted_below = self.events[-1][0] if self.events else 0

    def put(self, obj: Obj) -> None:
        """Create an object directly (as another tool or an older control plane would have)."""
        with self.lock:
            meta = obj["metadata"]
            self._store(obj["kind"], meta["namespace"], meta["name"], copy.deepcopy(obj), "ADDED")
            if obj["kind"] == "Deployment":
                self._sync_pods(meta["namespace"], meta["name"])

    # ------------------------------------------------------------------------------- requests
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = {k: v[-1] for k, v in parse_qs(request.query_string).items()}
        raw = await request.read()
        body: Any = None
        if raw:
            body = yaml.safe_load(raw) if "yaml" in request.content_type else json.loads(raw)
        self.requests.append(Request(request.method, request.path, query, request.content_type, body))
        if self.forbidden:
            return self._forbidden_rbac(request.path)
        route = recorded.route(request.path)
        if route is None:
            return recorded.status(404, "NotFound", "the server could not find the requested resource")
        (kind, api_version, group), namespace, name = route
        if query.get("watch") == "true":
            return await self._watch(request, kind, api_version, namespace, query)
        with self.lock:
            return self._dispatch(
                request.method, kind, api_version, group, namespace, name, query, body, request.content_type
            )

    def _dispatch(
        self,
        method: str,
        kind: str,
        api_version: str,
        group: str,
        namespace: str,
        name: str | None,
        query: dict[str, str],
        body: Any,
        content_type: str,
    ) -> web.Response:
        if namespace not in self.namespaces:
            return recorded.status(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        if method == "GET" and name is None:
            return self._list(kind, api_version, namespace, query.get("labelSelector", ""))
        if name is None:
            return recorded.status(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        if method == "GET":
            found = self.objects.get((kind, namespace, name))
            return recorded.respond(200, found) if found else recorded.not_found(kind, group, name)
        if method == "PATCH" and content_type == "application/apply-patch+yaml":
            return self._apply(kind, api_version, group, namespace, name, query, body)
        if method == "PATCH" and content_type == "application/merge-patch+json":
            return self._merge(kind, group, namespace, name, body)
        if method == "DELETE":
            return self._delete(kind, group, namespace, name)
        return recorded.status(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
            "application/strategic-merge-patch+json",
        )

    def _list(self, kind: str, api_version: str, namespace: str, selector: str) -> web.Response:
        wanted = recorded.selector(selector)
        items = []
        for (k, ns, _), obj in sorted(self.objects.items()):
            if k == kind and ns == namespace and recorded.matches(obj, wanted):
                item = copy.deepcopy(obj)
                item.pop("kind"), item.pop("apiVersion")  # list items carry neither
                items.append(item)
        version = str(self.events[-1][0]) if self.events else "999"
        return recorded.respond(
            200,
            {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _apply(
        self,
        kind: str,
        api_version: str,
        group: str,
        namespace: str,
        name: str,
        query: dict[str, str],
        body: Obj,
    ) -> web.Response:
        if not query.get("fieldManager"):
            return recorded.status(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
            )
        current = self.objects.get((kind, namespace, name))
        wanted_rv = body.get("metadata", {}).get("resourceVersion")
        if wanted_rv is not None and (current is None or current["metadata"]["resourceVersion"] != wanted_rv):
            if current is None:
                return recorded.not_found(kind, group, name)
            return recorded.conflict(kind, group, name)
        if current is None and kind == "Deployment" and self.deployment_quota is not None:
            used = sum(1 for (k, ns, _) in self.objects if k == kind and ns == namespace)
            if used >= self.deployment_quota:
                return recorded.status(
                    403,
                    "Forbidden",
                    f'deployments.apps "{name}" is forbidden: exceeded quota: compute, requested: '
                    f"count/deployments.apps=1, used: count/deployments.apps={used}, "
                    f"limited: count/deployments.apps={self.deployment_quota}",
                    {"name": name, "group": "apps", "kind": "deployments"},
                )
        obj = copy.deepcopy(body)
        obj["metadata"].pop("resourceVersion", None)
        if current is not None:
            # Our only applier owns every field it sends, so re-applying replaces those fields.
            obj["metadata"] = {**current["metadata"], **obj["metadata"]}
            obj["status"] = current.get("status", {})
        self._store(kind, namespace, name, obj, "MODIFIED" if current else "ADDED")
        if kind == "Deployment":
            self._sync_pods(namespace, name)
        return recorded.respond(200 if current else 201, self.objects[(kind, namespace, name)])

    def _merge(self, kind: str, group: str, namespace: str, name: str, patch: Obj) -> web.Response:
        current = self.objects.get((kind, namespace, name))
        if current is None:
            return recorded.not_found(kind, group, name)
        wanted_rv = patch.get("metadata", {}).get("resourceVersion")
        if wanted_rv is not None and current["metadata"]["resourceVersion"] != wanted_rv:
            return recorded.conflict(kind, group, name)
        merged = recorded.merge_patch(copy.deepcopy(current), patch)
        self._store(kind, namespace, name, merged, "MODIFIED")
        if kind == "Deployment":
            self._sync_pods(namespace, name)
        return recorded.respond(200, self.objects[(kind, namespace, name)])

    def _delete(self, kind: str, group: str, namespace: str, name: str) -> web.Response:
        obj = self.objects.pop((kind, namespace, name), None)
        if obj is None:
            return recorded.not_found(kind, group, name)
        self._event("DELETED", obj)
        if kind == "Deployment":
            for pod in self._pods_of(namespace, name):
                self.objects.pop(("Pod", namespace, pod["metadata"]["name"]))
                self._event("DELETED", pod)
        plural = recorded.plural_of(kind, group)
        return recorded.respond(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": group,
                    "kind": plural.split(".")[0],
                    "uid": obj["metadata"]["uid"],
                },
            },
        )

    async def _watch(
        self, request: web.Request, kind: str, api_version: str, namespace: str, query: dict[str, str]
    ) -> web.StreamResponse:
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds", "1800"))
        wanted = recorded.selector(query.get("labelSelector", ""))
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if since and since < self.compacted_below:
            expired = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {since} ({self.compacted_below})",
                "reason": "Expired",
                "code": 410,
            }
            await response.write(json.dumps({"type": "ERROR", "object": expired}).encode() + b"\n")
            return response
        deadline = asyncio.get_running_loop().time() + timeout
        sent = since
        while asyncio.get_running_loop().time() < deadline and not self.closing.is_set():
            if self.partitioned:
                await asyncio.sleep(0.02)
                continue
            with self.lock:
                fresh = [
                    (rv, t, o)
                    for rv, t, o in self.events
                    if rv > sent and o["kind"] == kind and o["metadata"]["namespace"] == namespace
                ]
            for rv, event_type, obj in fresh:
                sent = rv
                if recorded.matches(obj, wanted):
                    await response.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")
            await asyncio.sleep(0.02)
        if query.get("allowWatchBookmarks") == "true":
            mark = {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(max(sent, since)), "creationTimestamp": None},
            }
            await response.write(json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n")
        return response  # the server ends the stream: timeoutSeconds elapsed

    def _forbidden_rbac(self, path: str) -> web.Response:
        route = recorded.route(path)
        plural = route[0][0].lower() + "s" if route else "resources"
        namespace = route[1] if route else "default"
        return recorded.status(
            403,
            "Forbidden",
            f'{plural} is forbidden: User "system:serviceaccount:ci:tester" cannot list resource '
            f'"{plural}" in API group "" in the namespace "{namespace}"',
            {"kind": plural},
        )

    # ---------------------------------------------------------------- controllers, simulated
    def _store(self, kind: str, namespace: str, name: str, obj: Obj, event: str) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", recorded.uid())
        meta.setdefault("creationTimestamp", "2026-11-23T21:00:00Z")
        meta["namespace"] = namespace
        meta["generation"] = int(meta.get("generation", 0)) + 1
        self.objects[(kind, namespace, name)] = obj
        self._touch(event, obj)

    def _touch(self, event: str, obj: Obj) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self._event(event, obj)

    def _event(self, event: str, obj: Obj) -> None:
        snapshot = copy.deepcopy(obj)
        if event == "DELETED":  # a deletion is a change of its own, with a version of its own
            snapshot["metadata"]["resourceVersion"] = str(next(self._rv))
        self.events.append((int(snapshot["metadata"]["resourceVersion"]), event, snapshot))

    def _pods_of(self, namespace: str, deployment: str) -> list[Obj]:
        dep = self.objects.get(("Deployment", namespace, deployment))
        if dep is None:
            return []
        wanted = dep["spec"]["selector"]["matchLabels"]
        return [
            o
            for (k, ns, _), o in sorted(self.objects.items())
            if k == "Pod" and ns == namespace and recorded.matches(o, wanted)
        ]

    def _sync_pods(self, namespace: str, deployment: str) -> None:
        """The ReplicaSet's job: as many pods as `spec.replicas`, removing unready ones first."""
        dep = self.objects[("Deployment", namespace, deployment)]
        pods = self._pods_of(namespace, deployment)
        want = int(dep["spec"].get("replicas", 1))
        for pod in sorted(pods, key=recorded.ready)[: max(0, len(pods) - want)]:
            self.objects.pop(("Pod", namespace, pod["metadata"]["name"]))
            self._event("DELETED", pod)
        all_pods = sum(1 for (k, ns, _) in self.objects if k == "Pod" and ns == namespace)
        for _ in range(max(0, want - len(pods))):
            if self.pod_quota is not None and all_pods >= self.pod_quota:
                break
            all_pods += 1
            name = f"{deployment}-7d9f8c6b5d-{secrets.token_hex(3)[:5]}"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": dict(dep["spec"]["template"]["metadata"]["labels"])},
                "spec": copy.deepcopy(dep["spec"]["template"]["spec"]),
                "status": recorded.pod_status(ready=False),
            }
            self._store("Pod", namespace, name, pod, "ADDED")
        self._deployment_status(namespace, deployment)

    def _deployment_status(self, namespace: str, deployment: str) -> None:
        dep = self.objects[("Deployment", namespace, deployment)]
        pods = self._pods_of(namespace, deployment)
        want = int(dep["spec"].get("replicas", 1))
        conditions = []
        if len(pods) < want:
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": f'pods "{deployment}-7d9f8c6b5d-x" is forbidden: exceeded quota: '
                    f"pods, requested: pods=1, used: pods={self.pod_quota}, "
                    f"limited: pods={self.pod_quota}",
                }
            )
        ready = sum(1 for p in pods if recorded.ready(p))
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        }
        self._touch("MODIFIED", dep)
