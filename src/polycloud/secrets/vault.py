"""`Vault`: the secrets use cases over the state store and a `KeyWrapper`, in the control plane process.

A Service in project P that names secret S gets P's S when there is one, else the fleet-wide S (set
without `--project`); a Service without a project sees fleet-wide secrets only. `lookup` is the
reconciler's `SecretLookup`: it reads ciphertext at most once a second and keeps opened values in
memory, so a reconcile pass neither queries nor decrypts per replica.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from polycloud import names
from polycloud.errors import UserError
from polycloud.secrets.crypto import KeyWrapper, SecretUnreadable, open_secret, rewrap, seal_secret
from polycloud.state import EventInput, Store
from polycloud.state.records import SealedSecret, SecretRecord

MAX_VALUE_BYTES = 64 * 1024
_LEGACY_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")
"""What names were before `polycloud.names`: such secrets can still be read and deleted, not set."""


@runtime_checkable
class Rotatable(Protocol):
    """A key wrapper that can replace its master key (`LocalKeyWrapper.rotate`)."""

    def rotate(self, rewrap_all: Callable[[KeyWrapper], int]) -> int:
        """Make a new master key current, calling `rewrap_all(new)` to re-wrap every data key."""
        ...


def check_name(value: str, what: str) -> str:
    """`value` when it names a secret or project that may exist (old, laxer names included).

    Raises:
        UserError: Not letters, digits, '.', '_' and '-' (starting and ending with a letter or digit).
    """
    if not _LEGACY_NAME.fullmatch(value):
        raise UserError(f"{what} {value!r} must be letters, digits, '.', '_' or '-' (at most 253)")
    return value


def check_value(value: str) -> str:
    """`value` when an environment variable can hold it.

    Raises:
        UserError: Empty, too long, or containing a NUL character.
    """
    if not value:
        raise UserError("the secret's value is empty (it is read from standard input)")
    if "\0" in value:
        raise UserError(
            "a secret's value cannot contain a NUL character (it becomes an environment variable)"
        )
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise UserError(f"a secret's value may be at most {MAX_VALUE_BYTES} bytes")
    return value


class Vault:
    """Sets, lists, deletes and opens secrets; rotates the master key. Thread-safe."""

    def __init__(self, store: Store, wrapper: KeyWrapper, *, refresh_s: float = 1.0) -> None:
        """Keep secrets in `store`, wrapped by `wrapper`; `lookup` re-reads ciphertext every `refresh_s`."""
        self.store = store
        self.wrapper = wrapper
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._sealed: dict[tuple[str, str], SealedSecret] = {}
        self._read_at = -float("inf")
        self._opened: dict[tuple[str, str, int, str], str] = {}
        self._reported: set[tuple[str, str, int]] = set()

    def set(self, name: str, value: str, project: str | None = None) -> SecretRecord:
        """Create a secret or give it a new value (its version goes up, which rolls its replicas)."""
        names.check_secret_name(name)
        if project is not None:
            names.check_project(project)
        sealed = seal_secret(check_value(value), name, project, self.wrapper)
        record = self.store.put_secret(sealed)
        self._forget()
        return record

    def list(self) -> list[SecretRecord]:
        """Every secret's name, project and version; never a value."""
        return self.store.secrets()

    def delete(self, name: str, project: str | None = None) -> None:
        """Delete a secret; services that name it are blocked until it exists again."""
        check_name(name, "secret name")
        if project is not None:
            check_name(project, "project")
        self.store.delete_secret(name, project)
        self._forget()

    def rotate_master(self) -> int:
        """Re-wrap every data key under a new master key in one transaction; returns how many.

        Raises:
            UserError: The key wrapper cannot rotate (a KMS rotates its keys itself).
        """
        wrapper = self.wrapper
        if not isinstance(wrapper, Rotatable):
            raise UserError("this key wrapper rotates its keys itself; nothing to do here")
        with self._lock:
            count = wrapper.rotate(
                lambda new: self.store.rewrap_secrets(lambda s: rewrap(s, self.wrapper, new))
            )
            self._read_at = -float("inf")
            self._opened.clear()
        return count

    def lookup(self, name: str, project: str | None) -> str | None:
        """The value a Service of `project` gets for secret `name`; None when it has none it can read."""
        with self._lock:
            self._refresh()
            sealed = self._sealed.get((project or "", name)) or self._sealed.get(("", name))
            if sealed is None:
                return None
            return self._open(sealed)

    def _refresh(self) -> None:
        if time.monotonic() - self._read_at < self._refresh_s:
            return
        self._sealed = {(s.project or "", s.name): s for s in self.store.sealed_secrets()}
        self._read_at = time.monotonic()
        live = {(s.project or "", s.name, s.version, s.key_id) for s in self._sealed.values()}
        self._opened = {k: v for k, v in self._opened.items() if k in live}

    def _open(self, sealed: SealedSecret) -> str | None:
        key = (sealed.project or "", sealed.name, sealed.version, sealed.key_id)
        if key not in self._opened:
            try:
                self._opened[key] = open_secret(sealed, self.wrapper)
            except SecretUnreadable as e:
                self._report(sealed, str(e))
                return None
        return self._opened[key]

    def _report(self, sealed: SealedSecret, why: str) -> None:
        """Tell the operator once per secret version why it cannot be opened (it counts as missing)."""
        key = (sealed.project or "", sealed.name, sealed.version)
        if key in self._reported:
            return
        self._reported.add(key)
        self.store.add_events([EventInput("error", "SecretUnreadable", why)])

    def _forget(self) -> None:
        with self._lock:
            self._read_at = -float("inf")
