"""Several control-plane servers on PostgreSQL with one fenced leader, and gateways of their own, under
client load: no duplicated replica, no failed request, a new leader within the lease.

(The database-outage case, with a private PostgreSQL the test stops, is in test_database_outage.py.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import eventually, replica_processes
from tests.e2e.fleets import Fleet, ServiceDecl
from tests.e2e.roles import Roles, drop_schema, fresh_schema_url
from tests.e2e.traffic import ClientLoad

pytestmark = pytest.mark.postgres

LEASE_S = 4.0
"""The servers' default lease (POLYCLOUD_LEASE_S)."""


@pytest.fixture
def roles(tmp_path: Path) -> Iterator[Roles]:
    url, schema = fresh_schema_url()
    fleet_roles = Roles(tmp_path, url)
    try:
        yield fleet_roles
    finally:
        leftovers = [p for p in fleet_roles.close() if "polycloud.serving" not in p]
        drop_schema(schema)
    assert not leftovers, f"control-plane processes left running: {leftovers}"


@pytest.fixture
def service_fleet(tmp_path: Path, model: Path) -> Fleet:
    """One active-active service, two replicas in each of two sites."""
    return Fleet(tmp_path, model, ("acme", "borealis"), (ServiceDecl("alpha", ("acme", "borealis"), 2),))


class DuplicateWatch(threading.Thread):
    """Scans the process table all along: never more replica processes than declared."""

    def __init__(self, home: Path, declared: dict[tuple[str, str], int]) -> None:
        super().__init__(daemon=True)
        self.home, self.declared = home, declared
        self.worst: dict[tuple[str, str], int] = {}
        self.duplicate_ids: set[str] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            procs = replica_processes(self.home)
            counts = Counter((p.service, p.cluster) for p in procs)
            for key, n in counts.items():
                self.worst[key] = max(self.worst.get(key, 0), n)
            ids = Counter(p.replica_id for p in procs)
            self.duplicate_ids |= {rid for rid, n in ids.items() if n > 1}

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def excess(self) -> dict[tuple[str, str], int]:
        return {k: n for k, n in self.worst.items() if n > self.declared.get(k, 0)}


def _ready_pids(roles: Roles, server_url_role: object, total: int) -> dict[str, int] | None:
    status = roles.status(server_url_role)  # type: ignore[arg-type]
    replicas = {
        r["id"]: r["pid"]
        for s in status["services"]
        for c in s["clusters"]
        for r in c["replicas"]
        if r["state"] == "ready"
    }
    return replicas if len(replicas) == total else None


def test_leader_dies_under_load_and_another_takes_over(roles: Roles, service_fleet: Fleet) -> None:
    roles.init()
    servers = [roles.start_server("srv-a"), roles.start_server("srv-b")]
    gateways = [roles.start_gateway("gw-1"), roles.start_gateway("gw-2")]
    for server in servers:
        roles.wait_healthy(server, "/api/v1/health")
    for gateway in gateways:
        roles.wait_healthy(gateway, "/v2/health/live")
    roles.cli("apply", service_fleet.write(), "--yes", server=servers[0])
    pids = eventually(lambda: _ready_pids(roles, servers[1], 4), "four ready replicas")

    # Both servers and both gateways are members; exactly one server leads.
    plane = roles.status(servers[1])["controlPlane"]
    assert {s["id"] for s in plane["servers"]} == {"srv-a", "srv-b"}
    assert len(plane["gateways"]) == 2 and all(g["pid"] for g in plane["gateways"])
    assert sum(s["leader"] for s in plane["servers"]) == 1 and plane["epoch"] >= 1

    watch = DuplicateWatch(roles.home, service_fleet.declared())
    watch.start()
    with ClientLoad([g.url for g in gateways], "alpha", clients=4) as load:
        load.wait_for(100)
        leader_id, epoch = roles.leader(servers[0])
        leader = roles.by_name(str(leader_id))
        survivor = next(s for s in servers if s is not leader)
        leader.popen.send_signal(signal.SIGKILL)
        leader.popen.wait()
        killed_at = time.monotonic()
        new_leader = eventually(
            lambda: roles.leader(survivor)[0] == survivor.name and roles.leader(survivor), "a new leader", 30
        )
        took_over_s = time.monotonic() - killed_at
        assert new_leader[1] == epoch + 1
        assert took_over_s <= LEASE_S + 2.0, f"new leader after {took_over_s:.1f} s"
        load.wait_for(200)
        # The new leader adopted every replica: none restarted, none doubled.
        assert _ready_pids(roles, survivor, 4) == pids

        # A killed replica is replaced by the new leader.
        victim = sorted(pids)[0]
        os.kill(pids[victim], signal.SIGKILL)
        eventually(
            lambda: (
                (found := _ready_pids(roles, survivor, 4)) is not None and pids[victim] not in found.values()
            ),
            "the killed replica replaced",
        )
        load.wait_for(100)
    watch.stop()
    assert not load.failures(), load.describe_failures()
    assert not watch.excess() and not watch.duplicate_ids, (watch.worst, watch.duplicate_ids)

    # A change applied through the surviving server converges.
    changed = service_fleet.with_env("alpha", COLOR="green")
    result = roles.cli("apply", changed.write("v2.yaml"), "--yes", server=survivor)
    assert result.rc == 0, result
    status = roles.status(survivor)
    assert status["services"][0]["revision"] == "r2"
    assert {p.revision for p in replica_processes(roles.home)} == {2}


def test_a_paused_leader_changes_nothing_when_it_wakes(roles: Roles, service_fleet: Fleet) -> None:
    roles.init()
    servers = [roles.start_server("srv-a"), roles.start_server("srv-b")]
    for server in servers:
        roles.wait_healthy(server, "/api/v1/health")
    roles.cli("apply", service_fleet.write(), "--yes", server=servers[0])
    pids = eventually(lambda: _ready_pids(roles, servers[0], 4), "four ready replicas")
    leader_id, epoch = roles.leader(servers[0])
    leader = roles.by_name(str(leader_id))
    follower = next(s for s in servers if s is not leader)

    leader.popen.send_signal(signal.SIGSTOP)
    try:
        eventually(
            lambda: roles.leader(follower) == (follower.name, epoch + 1), "the follower to take over", 30
        )
        # While the old leader sleeps, the new one changes the fleet: one replica fewer per site.
        smaller = Fleet(
            service_fleet.root,
            service_fleet.model,
            service_fleet.clusters,
            (ServiceDecl("alpha", service_fleet.clusters, 1),),
        )
        assert roles.cli("apply", smaller.write("smaller.yaml"), "--yes", server=follower).rc == 0
        shrunk = eventually(lambda: _ready_pids(roles, follower, 2), "two replicas")
    finally:
        leader.popen.send_signal(signal.SIGCONT)
    woke_at = time.monotonic()
    watch = DuplicateWatch(roles.home, smaller.declared())
    watch.start()
    # The old leader wakes with a fleet of four in its memory; it must neither start nor stop anything.
    while time.monotonic() - woke_at < LEASE_S + 2:
        assert _ready_pids(roles, follower, 2) == shrunk
        time.sleep(0.2)
    watch.stop()
    assert not watch.excess(), watch.worst
    assert roles.leader(follower) == (follower.name, epoch + 1)
    assert leader.alive() and set(shrunk) < set(pids)
    assert "lost the leader lease" in leader.output()
