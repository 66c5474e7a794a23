"""Fault injection for drills and tests, as records the leader applies (`controller/faulting.py`).

Any server takes the request: it checks the cluster exists and its driver can inject faults, records
the fault, wakes its own reconciler (the leader may be this process) and waits, bounded, until the
leader has applied it, so that a drill's clock starts when the fault is really in force. Clearing
waits the same way until the leader has taken the faults back. A fault given an end (`until`) is
ended on time by whichever leader runs then, even if the server that recorded it is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from polycloud.drivers.base import SupportsFaults
from polycloud.drivers.registry import driver_class
from polycloud.errors import NotFoundError, PermanentError, TransientError
from polycloud.state import EventInput
from polycloud.state.faults import FaultInput, FaultRecord
from polycloud.state.repositories import DocumentReader, EventWriter, LiveFaultReader
from polycloud.state.repositories_services import FaultRequestRepository

APPLY_TIMEOUT_S = 10.0
"""How long a request waits for the leader to apply (or take back) a fault."""
POLL_S = 0.02


@dataclass(frozen=True)
class FaultRequest:
    """A fault as the API receives it."""

    kind: str
    replica_id: str | None = None
    delay_ms: float = 0.0
    error_rate: float = 0.0
    until: datetime | None = None


def ends_in(seconds: float | None) -> datetime | None:
    """The end of a fault that should last `seconds` from now (None: until cleared)."""
    return None if seconds is None else datetime.now(UTC) + timedelta(seconds=seconds)


def _check_cluster(store: DocumentReader, cluster: str) -> None:
    found = next((d for d in store.documents("Cluster") if d.name == cluster), None)
    if found is None:
        raise NotFoundError(f"no declared cluster named {cluster!r}")
    driver = found.spec.get("spec", {}).get("driver", {})
    kind = str(driver.get("type", "local")) if isinstance(driver, dict) else "local"
    cls = driver_class(kind)
    if cls is None or not issubclass(cls, SupportsFaults):
        raise PermanentError(f"the driver of cluster {cluster} ({kind}) cannot inject faults")


def _wait(
    store: FaultRequestRepository, ids: list[int], done: Callable[[FaultRecord], bool], what: str
) -> None:
    deadline = time.monotonic() + APPLY_TIMEOUT_S
    while ids:
        if all(done(r) for r in store.faults(ids)):
            return
        if time.monotonic() > deadline:
            raise TransientError(
                f"the fault is recorded but no leader {what} it within {APPLY_TIMEOUT_S:.0f} s "
                "(is a server running? see `polycloud status`); the leader will when it runs"
            )
        time.sleep(POLL_S)


def inject(
    store: FaultRequestRepository, cluster: str, request: FaultRequest, wake: Callable[[], None]
) -> FaultRecord:
    """Record a fault on `cluster` and wait until the leader has applied it.

    Raises:
        NotFoundError: No such cluster.
        PermanentError: Its driver cannot inject faults.
        TransientError: No leader applied it in time (it stays recorded and will be applied).
    """
    _check_cluster(store, cluster)
    record = store.add_fault(
        FaultInput(
            cluster, request.kind, request.replica_id, request.delay_ms, request.error_rate, request.until
        )
    )
    wake()
    _wait(store, [record.id], lambda r: r.applied_at is not None, "applied")
    return record


def active(store: LiveFaultReader, cluster: str) -> bool:
    """Whether `cluster` has a fault in force (or one still to be taken back)."""
    now = datetime.now(UTC)
    return any(r.cluster == cluster and r.wanted(now) for r in store.live_faults())


def clear(store: FaultRequestRepository, cluster: str, wake: Callable[[], None]) -> None:
    """Clear every fault of `cluster` and wait until the leader has taken them back.

    Raises:
        TransientError: No leader took them back in time (they stay cleared and will be).
    """
    ids = store.clear_faults(cluster)
    wake()
    _wait(store, ids, lambda r: r.released_at is not None or r.applied_at is None, "took back")


def drill_event(store: EventWriter, reason: str, cluster: str, message: str) -> None:
    """Put a drill on the incident timeline, like the failovers it causes."""
    store.add_events([EventInput(level="warning", reason=reason, cluster=cluster, message=message)])
