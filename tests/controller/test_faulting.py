"""The leader makes drivers carry exactly the recorded faults: applied once, re-applied by a new leader,
taken back when cleared or past their end, one-shot kills consumed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support import CarryingDriver

from polycloud.controller.faulting import FaultSync
from polycloud.state import Store
from polycloud.state.faults import FaultInput


def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'state.db'}")


def test_a_fault_is_applied_once_and_taken_back_when_cleared(tmp_path: Path) -> None:
    store, driver = _store(tmp_path), CarryingDriver("west")
    leader = FaultSync(store)
    fault = store.add_fault(FaultInput("west", "latency", delay_ms=50))
    leader.sync({"west": driver})
    leader.sync({"west": driver})  # nothing changed: nothing done again
    assert driver.calls == ["clear", "inject latency"] and driver.carried[0].delay_ms == 50
    assert store.faults([fault.id])[0].applied_at is not None
    store.clear_faults("west")
    leader.sync({"west": driver})
    assert driver.carried == [] and store.faults([fault.id])[0].released_at is not None
    assert store.live_faults() == []


def test_a_new_leader_applies_what_is_wanted_and_an_end_is_kept(tmp_path: Path) -> None:
    store, driver = _store(tmp_path), CarryingDriver("west")
    now = datetime.now(UTC)
    store.add_fault(FaultInput("west", "freeze", until=now + timedelta(seconds=30)))
    FaultSync(store).sync({"west": driver}, now)
    driver.carried = []  # the old leader's process is gone; the driver state is what the new one restores
    successor = FaultSync(store)
    successor.sync({"west": driver}, now)
    assert [f.kind for f in driver.carried] == ["freeze"]
    successor.sync({"west": driver}, now + timedelta(seconds=31))  # past its end: taken back on time
    assert driver.carried == [] and store.live_faults() == []


def test_a_kill_is_consumed(tmp_path: Path) -> None:
    store, driver = _store(tmp_path), CarryingDriver("west")
    store.add_fault(FaultInput("west", "kill", replica_id="svc-west-0"))
    leader = FaultSync(store)
    leader.sync({"west": driver})
    leader.sync({"west": driver})
    assert driver.calls.count("inject kill") == 1 and store.live_faults() == []


def test_a_cluster_without_a_fault_capable_driver_is_left_alone(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_fault(FaultInput("east", "down"))
    FaultSync(store).sync({})  # no driver: nothing to do, nothing marked
    assert [r.applied_at for r in store.live_faults()] == [None]
