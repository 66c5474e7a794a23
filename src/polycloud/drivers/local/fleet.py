"""Every local cluster of a home at once: list all replicas, stop all replicas (`polycloud down`)."""

from __future__ import annotations

import signal
from pathlib import Path

from polycloud.drivers.base import ReplicaStatus
from polycloud.drivers.local.driver import LocalDriver
from polycloud.drivers.local.processes import scan, send, wait_gone
from polycloud.drivers.local.records import RecordStore
from polycloud.errors import TransientError

KILL_WAIT_S = 10.0


def _clusters(home: Path) -> set[str]:
    """Clusters of `home` with a running replica or a sidecar record."""
    names = {p.cluster for p in scan(home)}
    run = home / "run"
    if run.is_dir():
        names |= {d.name for d in run.iterdir() if d.is_dir()}
    return names


def list_all_replicas(home: Path) -> list[ReplicaStatus]:
    """The replicas of every local cluster of `home`, as each cluster's `LocalDriver` lists them.

    Args:
        home: The polycloud home.
    """
    home = home.expanduser().resolve()
    statuses: list[ReplicaStatus] = []
    for cluster in sorted(_clusters(home)):
        driver = LocalDriver(cluster, home)
        try:
            statuses += driver.list_replicas()
        finally:
            driver.close()
    return statuses


def stop_all_replicas(home: Path, grace_s: float = 5.0) -> int:
    """Stop every replica process of `home`, in every cluster, and wait until all have exited.

    SIGTERM first, SIGKILL for whatever still runs after `grace_s`. Sidecar records (including the
    failure records of crashed replicas) are removed: after this, no cluster of `home` lists anything.
    Injected fault state is kept.

    Args:
        home: The polycloud home.
        grace_s: How long replicas may take to finish in-flight requests.

    Returns:
        How many replica processes were stopped.

    Raises:
        TransientError: A process survived SIGKILL for `KILL_WAIT_S` (e.g. stuck in the kernel).
    """
    home = home.expanduser().resolve()
    clusters = _clusters(home)
    stopped = scan(home)
    for proc in stopped:
        send(proc, signal.SIGTERM)
    leftover = wait_gone(stopped, grace_s)
    late = [p for p in scan(home) if p.key not in {s.key for s in stopped}]  # started meanwhile
    stopped += late
    for proc in leftover + late:
        send(proc, signal.SIGKILL)
    survivors = wait_gone(leftover + late, KILL_WAIT_S)
    if survivors:
        pids = ", ".join(str(p.pid) for p in survivors)
        raise TransientError(f"replica processes {pids} did not exit after SIGKILL")
    for cluster in clusters:
        store = RecordStore(home, cluster)
        with store.transaction() as txn:
            txn.clear()
    return len(stopped)
