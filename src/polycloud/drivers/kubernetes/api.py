"""A small, typed face of the official `kubernetes` client: apply, get, list, delete, watch — as dicts.

Objects stay plain JSON dicts, exactly as the API server sends them (no generated models), so the
manifests we build and the objects we read share one shape. Every `ApiException` and connection
failure becomes a `TransientError` or `PermanentError` here and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from polycloud.drivers.kubernetes.manifests import Manifest
from polycloud.errors import PermanentError, PolycloudError, TransientError

FIELD_MANAGER = "polycloud"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_S = 10.0
REQUEST_TIMEOUT = (3.0, REQUEST_TIMEOUT_S)
"""(connect, read) seconds: a blackholed API server must not hold the reconciler for long."""


@dataclass(frozen=True)
class Kind:
    """One resource kind: which API group object serves it and its method suffix."""

    name: str
    group: str  # "core" or "apps"
    method: str  # e.g. "namespaced_deployment"


KINDS = {
    k.name: k
    for k in (
        Kind("Deployment", "apps", "namespaced_deployment"),
        Kind("Pod", "core", "namespaced_pod"),
        Kind("Service", "core", "namespaced_service"),
        Kind("Secret", "core", "namespaced_secret"),
    )
}


def connect(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """An API client for a kubeconfig context (the default file and current context when None).

    Raises:
        PermanentError: No kubeconfig, or no such context in it.
    """
    configuration = client.Configuration()
    try:
        path = str(Path(kubeconfig).expanduser()) if kubeconfig else None
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=configuration
        )
    except (ConfigException, OSError, TypeError) as e:
        where = kubeconfig or "~/.kube/config"
        raise PermanentError(f"kubeconfig {where}, context {context or '(current)'}: {e}") from e
    configuration.retries = 1  # the reconciler retries on its own schedule; never block it long
    return client.ApiClient(configuration)


class KubeApi:
    """One namespace of one cluster. Thread-safe as the underlying client (urllib3 pools) is."""

    def __init__(self, api_client: client.ApiClient, namespace: str, *, where: str) -> None:
        self.namespace = namespace
        self.where = where  # "cluster X (context Y)", for messages
        self._groups: dict[str, Any] = {
            "core": client.CoreV1Api(api_client),
            "apps": client.AppsV1Api(api_client),
        }
        self._client = api_client

    def _call(self, verb: str, kind: str) -> Callable[..., Any]:
        k = KINDS[kind]
        fn: Callable[..., Any] = getattr(self._groups[k.group], f"{verb}_{k.method}")
        return fn

    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply `manifest` as field manager "polycloud" (forcing ownership of our fields)."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        with self._errors(f"apply {kind} {name}"):
            response = self._call("patch", kind)(
                name,
                self.namespace,
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY_PATCH,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            return _json(response)

    def patch(self, kind: str, name: str, patch: Manifest) -> Manifest:
        """A JSON merge patch (for scaling: a partial apply would drop the fields it leaves out)."""
        with self._errors(f"patch {kind} {name}"):
            response = self._call("patch", kind)(
                name,
                self.namespace,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            return _json(response)

    def get(self, kind: str, name: str) -> Manifest | None:
        """The object, or None when it does not exist."""
        with self._errors(f"read {kind} {name}"):
            try:
                response = self._call("read", kind)(
                    name, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
            return _json(response)

    def list(self, kind: str, selector: str) -> tuple[list[Manifest], str]:
        """Objects matching a label selector, and the list's resourceVersion (to watch from)."""
        with self._errors(f"list {kind}s"):
            response = self._call("list", kind)(
                self.namespace,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
            body = _json(response)
        items: list[Manifest] = body.get("items") or []
        for item in items:  # list items omit these; watch events and reads carry them
            item.setdefault("kind", kind)
        return items, str(body.get("metadata", {}).get("resourceVersion", ""))

    def delete(self, kind: str, name: str) -> bool:
        """Delete an object (its dependents in the background); False when it was already gone."""
        with self._errors(f"delete {kind} {name}"):
            try:
                self._call("delete", kind)(
                    name,
                    self.namespace,
                    propagation_policy="Background",
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            except ApiException as e:
                if e.status == 404:
                    return False
                raise
        return True

    def watch(self, kind: str, selector: str, resource_version: str, timeout_s: int) -> Iterator[Manifest]:
        """Watch events (`{"type", "object"}`) from `resource_version` until the server ends the stream
        after `timeout_s`. An expired version raises `TransientError` with status 410 in its message."""
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        with self._errors(f"watch {kind}s"):
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self._call("list", kind),
                self.namespace,
                label_selector=selector,
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                allow_watch_bookmarks=True,
                _request_timeout=(REQUEST_TIMEOUT[0], timeout_s + REQUEST_TIMEOUT_S),
            ):
                # `raw_object` is the dict as sent (deserialize=False would crash on ERROR events).
                yield {"type": event["type"], "object": event["raw_object"]}

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def _errors(self, doing: str) -> _Translate:
        return _Translate(f"{self.where}: {doing}")


class _Translate:
    """Context manager turning client failures into polycloud's error types."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None or isinstance(error, PolycloudError):
            return
        if isinstance(error, ApiException):
            raise translate(error, self.doing) from error
        if isinstance(error, urllib3.exceptions.HTTPError | OSError):
            raise TransientError(f"{self.doing}: the API server is unreachable ({error})") from error


class WatchExpired(TransientError):
    """410: the resourceVersion a watch started from was compacted away; list again."""


def translate(error: ApiException, doing: str) -> PolycloudError:
    """The polycloud error for an API error, with the server's own message (its Status object)."""
    status = int(error.status or 0)
    reason, message = _status_of(error)
    text = f"{doing}: {status} {reason}: {message}".rstrip(": ")
    if status == 403 and "exceeded quota" in message:
        return TransientError(f"{text} (a ResourceQuota is full; retrying when capacity frees up)")
    if status == 422 and "exceeded quota" in message:
        return TransientError(f"{text} (a ResourceQuota is full; retrying when capacity frees up)")
    if status in (401, 403):
        return PermanentError(f"{text} (check the credentials and RBAC of the kubeconfig context)")
    if status == 404:
        return PermanentError(f"{text} (does the namespace exist?)")
    if status == 409:
        return TransientError(f"{text} (changed concurrently; retrying)")
    if status == 410:
        return WatchExpired(f"{text} (watch expired; relisting)")
    if status == 429 or status >= 500 or status == 0:
        return TransientError(text)
    return PermanentError(text)


def _status_of(error: ApiException) -> tuple[str, str]:
    """(reason, message) from the body's Status object, else from the HTTP reason phrase."""
    try:
        body = json.loads(error.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("reason", error.reason or "")), str(body.get("message", ""))
    return str(error.reason or ""), str(error.body or "")[:300]


def _json(response: Any) -> Manifest:
    data: bytes = response.data
    parsed: Manifest = json.loads(data) if data else {}
    return parsed
