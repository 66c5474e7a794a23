"""Replica sidecar records: what the process list cannot tell (role, base delay, how it ended).

One JSON file per replica, `$home/run/<cluster>/<id>.json`, written *before* the process is spawned.
The process list stays the truth about what runs; a record only adds metadata, and a record whose
process is gone is how an exited replica stays visible as `failed` until `stop_replica` removes it.

How a process ended goes to a second file, `<id>.exit`, written without the cluster lock: the reaper
that learns an exit code may run while a caller up the stack holds that lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from polycloud.drivers.local.files import file_lock, read_json, remove, write_json


@dataclass(frozen=True)
class ReplicaRecord:
    """Metadata the driver keeps beside a replica process."""

    id: str
    service: str
    cluster: str
    revision: int
    role: str
    spec_hash: str
    port: int
    base_delay_ms: float
    """The spec's own delay, passed as the server's fixed base (`--delay-ms`)."""
    created_at: float
    """Wall-clock time the record was written (just before the spawn)."""
    log_offset: int = 0
    """Size of the log file before the spawn: lines after it belong to this run."""
    pid: int | None = None
    """None only between writing the record and the spawn returning."""
    create_time: float | None = None
    """The process's start time as psutil reports it (tells a reused pid apart)."""
    stopping: bool = False
    stop_deadline: float | None = None
    """Wall-clock time after which a replica still alive is SIGKILLed by whoever sees it."""
    applied_delay_ms: float = 0.0
    """Injected extra delay the replica last acknowledged (`/_polycloud/faults`); 0 at spawn."""
    applied_error_rate: float = 0.0
    """Injected extra error rate the replica last acknowledged; 0 at spawn."""

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplicaRecord | None:
        """Build a record from `to_json` output; None when required fields are missing or mistyped.

        Args:
            data: A decoded JSON object; unknown keys are ignored.
        """
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        try:
            record = cls(**known)
        except TypeError:
            return None
        ok = (
            isinstance(record.id, str)
            and isinstance(record.port, int)
            and isinstance(record.revision, int)
            and (record.pid is None or isinstance(record.pid, int))
        )
        return record if ok else None


class RecordTxn:
    """Record operations inside `RecordStore.transaction` (the cluster's lock is held)."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    def get(self, replica_id: str) -> ReplicaRecord | None:
        """The record of `replica_id`, if any."""
        return self._store.get(replica_id)

    def put(self, record: ReplicaRecord) -> None:
        """Create or replace a record."""
        write_json(self._store.path(record.id), record.to_json())

    def delete(self, replica_id: str) -> None:
        """Delete a record and its exit note; no error when absent."""
        remove(self._store.path(replica_id))
        remove(self._store.exit_path(replica_id))

    def clear(self) -> None:
        """Delete every record and exit note of the cluster (readable or not)."""
        for pattern in ("*.json", "*.exit"):
            for path in self._store.folder.glob(pattern):
                remove(path)


class RecordStore:
    """The records of one cluster of one home. Reads are lock-free; changes hold the cluster's lock."""

    def __init__(self, home: Path, cluster: str) -> None:
        self.folder = home / "run" / cluster
        self._lock_path = home / "run" / f".{cluster}.lock"

    def path(self, replica_id: str) -> Path:
        """Where the record of `replica_id` lives."""
        return self.folder / f"{replica_id}.json"

    def get(self, replica_id: str) -> ReplicaRecord | None:
        """The record of `replica_id`, or None."""
        data = read_json(self.path(replica_id))
        return None if data is None else ReplicaRecord.from_json(data)

    def load_all(self) -> dict[str, ReplicaRecord]:
        """Every readable record of the cluster, by replica id."""
        records: dict[str, ReplicaRecord] = {}
        if not self.folder.is_dir():
            return records
        for path in self.folder.glob("*.json"):
            data = read_json(path)
            record = None if data is None else ReplicaRecord.from_json(data)
            if record is not None and record.id == path.stem:
                records[record.id] = record
        return records

    @contextmanager
    def transaction(self) -> Iterator[RecordTxn]:
        """Hold the cluster's lock; use the yielded object (not this store) for changes inside."""
        with file_lock(self._lock_path):
            yield RecordTxn(self)

    def update(
        self,
        replica_id: str,
        change: Callable[[ReplicaRecord], ReplicaRecord | None],
    ) -> ReplicaRecord | None:
        """Read-modify-write one record under the lock; nothing happens when it does not exist.

        Args:
            replica_id: The replica.
            change: Returns the new record, or None to leave the record as it is.

        Returns:
            The record as stored afterwards, or None when there is none.
        """
        with self.transaction() as txn:
            current = txn.get(replica_id)
            if current is None:
                return None
            new = change(current)
            if new is None or new == current:
                return current
            txn.put(new)
            return new

    def delete_if(self, replica_id: str, predicate: Callable[[ReplicaRecord], bool]) -> bool:
        """Delete the record when `predicate` holds for it (checked under the lock).

        Returns:
            True when a record was deleted.
        """
        with self.transaction() as txn:
            current = txn.get(replica_id)
            if current is None or not predicate(current):
                return False
            txn.delete(replica_id)
            return True

    def exit_path(self, replica_id: str) -> Path:
        """Where the exit note of `replica_id` lives."""
        return self.folder / f"{replica_id}.exit"

    def note_exit(self, replica_id: str, pid: int, exit_code: int | None, note: str = "") -> None:
        """Remember how process `pid` of `replica_id` ended; an earlier code or note is kept if unknown.

        Takes no lock (see the module docstring); the last of two concurrent writers wins, and both
        write the same facts about the same pid.
        """
        old = self.exit_of(replica_id, pid)
        code = exit_code if exit_code is not None else (old.code if old else None)
        text = note or (old.note if old else "")
        write_json(self.exit_path(replica_id), {"pid": pid, "code": code, "note": text})

    def exit_of(self, replica_id: str, pid: int | None) -> ExitNote | None:
        """How process `pid` of `replica_id` ended, if anyone noted it."""
        data = read_json(self.exit_path(replica_id))
        if data is None or pid is None or data.get("pid") != pid:
            return None
        code = data.get("code")
        note = data.get("note")
        return ExitNote(
            code=code if isinstance(code, int) else None, note=note if isinstance(note, str) else ""
        )


@dataclass(frozen=True)
class ExitNote:
    """How a replica process ended, as far as the driver learnt."""

    code: int | None
    """Exit status (negative: killed by that signal); None when the process was not our child."""
    note: str
    """Why, when the driver itself ended it (an injected fault)."""
