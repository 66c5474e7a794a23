"""Giving running replicas the injected latency and error rate, and remembering what each applied.

A replica's total delay is its spec's own `delay_ms` plus the injected latency. What a replica was
last told is kept in its sidecar record, so a listing can re-send the faults to a replica that missed
them (it was still starting, or another process injected them).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import httpx

from polycloud.drivers.local.faultstate import FaultState
from polycloud.drivers.local.probing import FaultSetting, push_faults
from polycloud.drivers.local.processes import ReplicaProcess
from polycloud.drivers.local.records import RecordStore, ReplicaRecord


def sync_faults(
    client: httpx.Client,
    records: RecordStore,
    procs: list[ReplicaProcess],
    state: FaultState,
    *,
    only_changed: bool = False,
) -> None:
    """Send `state` to every process of `procs` that has a live record, and note what each applied.

    Args:
        client: HTTP client for the replicas.
        records: The cluster's sidecar records.
        procs: Running replica processes (replicas stopping or without a record are skipped).
        state: The faults in force.
        only_changed: Skip replicas whose record says they already apply `state`.
    """
    targets: list[tuple[ReplicaRecord, FaultSetting]] = []
    for proc in procs:
        record = records.get(proc.replica_id)
        if record is None or record.stopping or record.pid != proc.pid or proc.endpoint is None:
            continue
        delay = record.base_delay_ms + state.delay_ms
        applied = (record.applied_delay_ms, record.applied_error_rate)
        if only_changed and applied == (delay, state.error_rate):
            continue
        targets.append((record, FaultSetting(proc.endpoint, delay, state.error_rate)))
    flags = push_faults(client, [setting for _, setting in targets])
    for (record, setting), ok in zip(targets, flags, strict=True):
        if ok:
            records.update(record.id, partial(_applied, record.pid, setting))


def _applied(pid: int | None, setting: FaultSetting, record: ReplicaRecord) -> ReplicaRecord | None:
    """`record` noting that process `pid` now applies `setting` (None if the record moved on)."""
    if record.pid != pid:
        return None
    return replace(record, applied_delay_ms=setting.delay_ms, applied_error_rate=setting.error_rate)
