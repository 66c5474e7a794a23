"""Turning what the driver observed (a process, a sidecar record, an exit note) into `ReplicaStatus`."""

from __future__ import annotations

import signal
from pathlib import Path

from polycloud.drivers.base import ReplicaState, ReplicaStatus
from polycloud.drivers.local.processes import ReplicaProcess
from polycloud.drivers.local.records import ExitNote, ReplicaRecord
from polycloud.drivers.local.spawning import last_log_line

UNKNOWN_ROLE = "unknown"
"""The role reported for a replica process whose sidecar record is missing."""


def process_status(proc: ReplicaProcess, record: ReplicaRecord | None, state: ReplicaState) -> ReplicaStatus:
    """The status of a running replica process (identity from its command line, role from its record)."""
    return ReplicaStatus(
        id=proc.replica_id,
        service=proc.service,
        cluster=proc.cluster,
        revision=proc.revision,
        role=record.role if record is not None else UNKNOWN_ROLE,
        spec_hash=proc.spec_hash,
        state=state,
        endpoint=proc.endpoint,
        pid=proc.pid,
        message="" if record is not None else "no sidecar record; adopted from the process list",
    )


def record_status(
    record: ReplicaRecord,
    state: ReplicaState,
    *,
    endpoint: str | None = None,
    pid: int | None = None,
    message: str = "",
) -> ReplicaStatus:
    """A status from a sidecar record (a replica whose process is not, or not yet, visible)."""
    return ReplicaStatus(
        id=record.id,
        service=record.service,
        cluster=record.cluster,
        revision=record.revision,
        role=record.role,
        spec_hash=record.spec_hash,
        state=state,
        endpoint=endpoint,
        pid=pid,
        message=message,
    )


def failure_message(ended: ExitNote | None, log_path: Path, log_offset: int) -> str:
    """Why a replica process is gone: the note of whoever killed it, else its last log line and status.

    Args:
        ended: What the driver learnt about the exit, if anything.
        log_path: The replica's log.
        log_offset: Where this run's output starts in the log.
    """
    if ended is not None and ended.note:
        return ended.note
    if ended is None or ended.code is None:
        how = "exited; exit status unknown (not a child of this process)"
    elif ended.code < 0:
        how = f"killed by {signal.Signals(-ended.code).name}"
    else:
        how = f"exit status {ended.code}"
    last = last_log_line(log_path, log_offset)
    return f"{last} ({how})" if last else how
