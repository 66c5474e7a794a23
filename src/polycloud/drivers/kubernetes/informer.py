"""A list-then-watch cache of one kind of object (client-go's informer, cut to what the driver needs).

The reconciler asks for replicas several times a second; listing the API server that often would be
rude. A background thread lists once, then follows a watch stream; when the server ends the stream
(its `timeoutSeconds`) it watches again from the last resourceVersion. An expired version (410) lists
afresh at once, serving the cache meanwhile; any other error (an unreachable server) marks the cache
unsynced — the driver then reports the cluster unobservable rather than stale — and lists after a pause.
"""

from __future__ import annotations

import logging
import threading

from polycloud.drivers.kubernetes.api import KubeApi, WatchExpired
from polycloud.drivers.kubernetes.manifests import Manifest
from polycloud.errors import PolycloudError

_log = logging.getLogger(__name__)


def _version(obj: Manifest) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0  # resourceVersions are opaque; etcd's happen to be integers, compare only then


class Informer:
    """Objects of `kind` matching `selector`, by name, kept current by a daemon thread."""

    def __init__(
        self,
        api: KubeApi,
        kind: str,
        selector: str,
        *,
        watch_timeout_s: int = 60,
        retry_s: float = 1.0,
    ) -> None:
        self.kind = kind
        self._api = api
        self._selector = selector
        self._watch_timeout_s = watch_timeout_s
        self._retry_s = retry_s
        self._objects: dict[str, Manifest] = {}
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.error: str | None = None
        self.watches = 0
        """Watch streams opened so far (tests and metrics)."""
        self._thread = threading.Thread(target=self._run, name=f"polycloud-informer-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()  # the thread ends when its current watch stream does (daemon: never blocks exit)

    def wait_synced(self, timeout_s: float) -> bool:
        return self._synced.wait(timeout_s)

    def snapshot(self) -> list[Manifest] | None:
        """Every object now, or None while the cache is not synced (never listed, or relisting)."""
        with self._lock:
            if not self._synced.is_set():
                return None
            return list(self._objects.values())

    def observe(self, obj: Manifest) -> None:
        """Record an object we just wrote, so the next read sees it before its watch event arrives."""
        self._put(obj)

    def forget(self, name: str) -> None:
        with self._lock:
            self._objects.pop(name, None)

    def _put(self, obj: Manifest) -> None:
        name = obj.get("metadata", {}).get("name")
        if not name:
            return
        with self._lock:
            old = self._objects.get(name)
            if old is None or _version(obj) >= _version(old):
                self._objects[name] = obj

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._relist()
                while not self._stop.is_set():
                    version = self._follow(version)
            except WatchExpired as e:
                # The cache is still the last known truth: keep serving it while relisting.
                _log.info("%s", e)
                self._stop.wait(self._retry_s / 10)
            except PolycloudError as e:
                self._failed(str(e))
            except Exception as e:  # noqa: BLE001  # a dead informer would serve a stale cache forever
                _log.exception("%s informer", self.kind)
                self._failed(f"{self.kind} watch failed: {e!r}")

    def _failed(self, why: str) -> None:
        self.error = why
        self._synced.clear()
        _log.warning("%s", why)
        self._stop.wait(self._retry_s)

    def _relist(self) -> str:
        items, version = self._api.list(self.kind, self._selector)
        with self._lock:
            self._objects = {i["metadata"]["name"]: i for i in items}
        self.error = None
        self._synced.set()
        return version

    def _follow(self, version: str) -> str:
        """Apply one watch stream's events; the version to resume from when the server ends it."""
        self.watches += 1
        for event in self._api.watch(self.kind, self._selector, version, self._watch_timeout_s):
            obj: Manifest = event.get("object") or {}
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            kind = event.get("type")
            if kind == "DELETED":
                self.forget(obj.get("metadata", {}).get("name", ""))
            elif kind in ("ADDED", "MODIFIED"):
                self._put(obj)
            # BOOKMARK: only the version moves on
            if self._stop.is_set():
                break
        return version
