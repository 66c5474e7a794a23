"""The gateway's on-disk copy of what it last learnt from the store, so that it serves without the store.

A gateway with a home keeps, under `$POLYCLOUD_HOME/gateway/`, the last route table (with each canary's
revision and share of traffic: the rollout weights) and the last inference key grants it applied:

    routes.json   {"format": 1, "saved_at": ISO, "services": [...], "clusters": [...], "flags": [...]}
    keys.json     {"format": 1, "saved_at": ISO, "keys": [...]}   (sha256 hashes only, never a key)

Both are JSON of the gateway's own records (`ServiceRoutes`, `ClusterRoute`, `KeyGrant`), validated
field by field when read (no pickle). Each is written atomically: a temporary file in the same folder,
`fsync`, a rename over the old copy, `fsync` of the folder; so a reader finds the old copy or the new
one, never a mix, even after a power cut. Files are created with mode 0600. A copy is written only when
its content changed, from the worker thread that read the store, never on the event loop.

`SavingRouteSource` and `SavingKeySource` wrap the store's sources. Their first snapshot answers with
the saved copy, when there is a readable one, without asking the store: a gateway that (re)starts
serves at once, even while the store is unreachable or slow to refuse (a PostgreSQL connection attempt
may wait 10 s). Later snapshots ask the store (routes again within `refresh_interval_s`, keys within
the key guard's sync interval), save what it answers, and let its failures through: the refresher and
the key guard then keep their last tables, which are at least as new as the copy. A copy that cannot
be read (corrupt, or another format) is ignored with a warning; the gateway then waits for the store,
as it would without one. A copy that cannot be written (disk full) is logged once per distinct reason
and the gateway serves on.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import TypeAdapter

from polycloud.exchange import KeyGrant
from polycloud.gateway.keys import KeySource
from polycloud.gateway.routes import ClusterRoute, FlagRoute, RouteSource, RouteTable, ServiceRoutes

log = logging.getLogger(__name__)

FORMAT = 1
"""The version of the files' layout; a gateway ignores a copy of any other version."""
FOLDER = "gateway"
"""The copy's folder, under the gateway's home."""
FILE_MODE = 0o600

T = TypeVar("T")


def write_atomically(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data` all at once: tmp file, fsync, rename, fsync of the folder.

    Raises:
        OSError: The folder or the file cannot be written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # a leftover tmp file would keep its own mode through O_CREAT
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@dataclass(frozen=True)
class SavedRoutes:
    """What `routes.json` holds besides its format and time: a route table."""

    services: list[ServiceRoutes]
    clusters: list[ClusterRoute]
    flags: list[FlagRoute] = field(default_factory=list)
    """Absent from copies saved before flags existed."""

    @classmethod
    def of(cls, table: RouteTable) -> SavedRoutes:
        """The copy of `table`."""
        return cls(list(table.services.values()), list(table.clusters.values()), list(table.flags.values()))

    def table(self) -> RouteTable:
        """The route table again."""
        return RouteTable.of(self.services, self.clusters, self.flags)


@dataclass(frozen=True)
class SavedKeys:
    """What `keys.json` holds besides its format and time: every key grant as last read."""

    keys: list[KeyGrant]


class SavedCopy(Generic[T]):
    """One file of the copy: `{"format", "saved_at", <the fields of T>}`, checked field by field."""

    def __init__(self, path: Path, kind: type[T], what: str) -> None:
        """Keep a `kind` (a dataclass) in `path`; `what` names it in logs."""
        self.path = path
        self._adapter = TypeAdapter(kind)
        self._what = what
        self._written: T | None = None
        """What the file holds, as last loaded or written (compared before anything is serialised)."""
        self._last_error: str | None = None

    def load(self) -> tuple[T, datetime] | None:
        """The saved value and when it was saved; None (with a warning) when absent or unusable."""
        try:
            document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring the saved %s in %s: %s", self._what, self.path, e)
            return None
        found = document.get("format") if isinstance(document, dict) else None
        if found != FORMAT:
            log.warning(
                "ignoring the saved %s in %s: format %r, this gateway reads %d",
                self._what,
                self.path,
                found,
                FORMAT,
            )
            return None
        try:
            saved_at = datetime.fromisoformat(str(document["saved_at"]))
            value = self._adapter.validate_python(document)
        except (KeyError, ValueError) as e:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring the saved %s in %s: %s", self._what, self.path, e)
            return None
        self._written = value
        return value, saved_at

    def save(self, value: T) -> bool:
        """Write `value` unless the file holds it already; False when writing failed (logged once)."""
        if value == self._written:
            return True
        fields = self._adapter.dump_python(value, mode="json")
        document = {"format": FORMAT, "saved_at": datetime.now(UTC).isoformat(), **fields}
        try:
            write_atomically(self.path, json.dumps(document, indent=1).encode())
        except OSError as e:
            message = str(e.strerror or e)
            if message != self._last_error:
                log.warning("cannot save the %s in %s (serving on): %s", self._what, self.path, message)
                self._last_error = message
            return False
        self._written, self._last_error = value, None
        return True


def saved_routes(home: Path) -> SavedCopy[SavedRoutes]:
    """The route copy of the gateway of `home`."""
    return SavedCopy(home / FOLDER / "routes.json", SavedRoutes, "routes")


def saved_keys(home: Path) -> SavedCopy[SavedKeys]:
    """The inference key copy of the gateway of `home`."""
    return SavedCopy(home / FOLDER / "keys.json", SavedKeys, "inference keys")


class SavingRouteSource:
    """A `RouteSource` that saves each table of `inner` and starts from the saved copy."""

    def __init__(self, inner: RouteSource, saved: SavedCopy[SavedRoutes]) -> None:
        """Wrap `inner` (the store's source) with the copy `saved`."""
        self._inner = inner
        self._saved = saved
        self._first = True

    def snapshot(self) -> RouteTable:
        """The saved copy on the first call (when there is one); afterwards `inner`'s table, saved.

        Raises:
            PolycloudError: `inner` failed (after the first call); nothing is saved then.
        """
        if self._first:
            self._first = False
            loaded = self._saved.load()
            if loaded is not None:
                table, saved_at = loaded[0].table(), loaded[1]
                log.info(
                    "serving from the routes saved at %s (%d services) until the store answers",
                    saved_at.isoformat(timespec="seconds"),
                    len(table.services),
                )
                return table
        table = self._inner.snapshot()
        self._saved.save(SavedRoutes.of(table))
        return table


class SavingKeySource:
    """A `KeySource` that saves each key snapshot of `inner` and starts from the saved copy."""

    def __init__(self, inner: KeySource, saved: SavedCopy[SavedKeys]) -> None:
        """Wrap `inner` (the store's key source) with the copy `saved`."""
        self._inner = inner
        self._saved = saved
        self._first = True

    def snapshot(self) -> Sequence[KeyGrant]:
        """The saved copy on the first call (when there is one); afterwards `inner`'s keys, saved.

        Raises:
            PolycloudError: `inner` failed (after the first call); nothing is saved then.
        """
        if self._first:
            self._first = False
            loaded = self._saved.load()
            if loaded is not None:
                keys, saved_at = loaded[0].keys, loaded[1]
                log.info(
                    "enforcing the inference keys saved at %s (%d keys) until the store answers",
                    saved_at.isoformat(timespec="seconds"),
                    len(keys),
                )
                return keys
        fresh = list(self._inner.snapshot())
        self._saved.save(SavedKeys(fresh))
        return fresh

    def flush(self, month: str, counts: dict[int, int], tokens: dict[int, int]) -> None:
        """Add counts to the store (`inner`); a failure leaves them to the key guard's next sync."""
        self._inner.flush(month, counts, tokens)
