"""`FaultSync`: the leader makes each cluster's driver carry exactly the faults recorded as wanted.

Faults are records in the store (`polycloud.state.faults`), so any server can take a drill's request
and a fault with an end is ended on time by whichever leader runs then. Each pass compares, per
cluster, the wanted faults with the ones this leader last put on the driver; on a difference it clears
the driver's faults and injects the wanted ones again (drivers' `inject` adds, so a clean slate is the
only exact way), then stamps the records. A new leader carries nothing yet, so it re-applies what is
wanted once. A `kill` is a one-shot: injected once, then consumed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime

from polycloud.drivers.base import ClusterDriver, Fault, SupportsFaults
from polycloud.state.faults import FaultRecord
from polycloud.state.repositories import FaultRepository


def as_fault(record: FaultRecord) -> Fault:
    """The driver's view of a recorded fault."""
    return Fault(
        kind=record.kind,  # type: ignore[arg-type]  # checked by the table's constraint
        replica_id=record.replica_id,
        delay_ms=record.delay_ms,
        error_rate=record.error_rate,
    )


class FaultSync:
    """Keeps drivers' faults equal to the recorded ones; one per reconciler (i.e. per leader)."""

    def __init__(self, store: FaultRepository) -> None:
        self._store = store
        self._carried: dict[str, tuple[int, ...]] = {}

    def sync(self, drivers: Mapping[str, ClusterDriver], now: datetime | None = None) -> None:
        """One pass over every cluster with live faults or faults this leader put on its driver."""
        now = now or datetime.now(UTC)
        by_cluster: dict[str, list[FaultRecord]] = defaultdict(list)
        for record in self._store.live_faults():
            by_cluster[record.cluster].append(record)
        applied: list[int] = []
        released: list[int] = []
        consumed: list[int] = []
        for cluster in sorted(set(by_cluster) | set(self._carried)):
            driver = drivers.get(cluster)
            if not isinstance(driver, SupportsFaults):
                continue  # the API refuses faults for such drivers; a vanished cluster has none to undo
            records = by_cluster.get(cluster, [])
            wanted = [r for r in records if r.wanted(now) and r.kind != "kill"]
            ended = [r.id for r in records if not r.wanted(now)]  # cleared or past its end
            ids = tuple(r.id for r in wanted)
            if self._carried.get(cluster) != ids:
                driver.clear_faults()
                for record in wanted:
                    driver.inject(as_fault(record))
                self._carried[cluster] = ids
            for record in records:
                if record.kind == "kill" and record.wanted(now):
                    driver.inject(as_fault(record))
                    consumed.append(record.id)
            applied += [r.id for r in wanted if r.applied_at is None]
            released += ended
            if not ids:
                self._carried.pop(cluster, None)
        if applied or released or consumed:
            self._store.mark_faults(applied=applied, released=released, consumed=consumed)
