"""Giving replicas the injected latency and error rate, and remembering what each has acknowledged.

The model server keeps two fault settings: a *base* delay and error rate from its command line, fixed
for its life (the driver passes the spec's own `delay_ms`, the simulated distance), and an *extra*
delay and error rate set at run time through `POST /_polycloud/faults`. Injected faults always go to
the extra setting, never to the base: otherwise a replica started during a drill would keep the fault
after `clear_faults()`, as nothing can lower a base.

What a replica last acknowledged is kept in its sidecar record (0 at spawn). A listing sends the
faults in force to a replica that has not acknowledged them (it was still starting when they were
injected, or it was started afterwards) before reporting it `ready`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

import httpx

from polycloud.drivers.local.faultstate import FaultState
from polycloud.drivers.local.probing import FaultSetting, push_faults
from polycloud.drivers.local.processes import ReplicaProcess
from polycloud.drivers.local.records import RecordStore, ReplicaRecord

_log = logging.getLogger(__name__)


def sync_faults(
    client: httpx.Client,
    records: RecordStore,
    procs: list[ReplicaProcess],
    state: FaultState,
    *,
    only_changed: bool = False,
) -> set[str]:
    """Send `state` as the extra fault setting to `procs`, and note what each acknowledged.

    Replicas that are stopping, or have no record of their current process, are left alone.

    Args:
        client: HTTP client for the replicas.
        records: The cluster's sidecar records.
        procs: Running replica processes.
        state: The faults in force.
        only_changed: Skip replicas whose record says they already apply `state`.

    Returns:
        The ids of the replicas that did not acknowledge `state` (unreachable, or an error answer).
    """
    targets: list[tuple[ReplicaRecord, FaultSetting]] = []
    for proc in procs:
        record = records.get(proc.replica_id)
        if record is None or record.stopping or record.pid != proc.pid or proc.endpoint is None:
            continue
        acknowledged = (record.applied_delay_ms, record.applied_error_rate)
        if only_changed and acknowledged == (state.delay_ms, state.error_rate):
            continue
        targets.append((record, FaultSetting(proc.endpoint, state.delay_ms, state.error_rate)))
    flags = push_faults(client, [setting for _, setting in targets])
    missed: set[str] = set()
    for (record, setting), ok in zip(targets, flags, strict=True):
        if ok:
            records.update(record.id, partial(_acknowledged, record.pid, setting))
        else:
            _log.info(
                "replica %s did not take the injected faults yet; retried on the next listing", record.id
            )
            missed.add(record.id)
    return missed


def _acknowledged(pid: int | None, setting: FaultSetting, record: ReplicaRecord) -> ReplicaRecord | None:
    """`record` noting that process `pid` now applies `setting` (None if the record moved on)."""
    if record.pid != pid:
        return None
    return replace(record, applied_delay_ms=setting.delay_ms, applied_error_rate=setting.error_rate)
