"""The leader lease, fencing, members and shared settings, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from polycloud.errors import FencedError
from polycloud.state import EventInput, MemberInput, Store

from .support import FakeClock


def test_first_holder_gets_epoch_one_and_renews_it(store: Store) -> None:
    lease = store.acquire_lease("srv-a", ttl_s=10)
    assert (lease.holder, lease.epoch) == ("srv-a", 1)
    again = store.acquire_lease("srv-a", ttl_s=10)
    assert (again.holder, again.epoch) == ("srv-a", 1)
    assert again.expires_at >= lease.expires_at


def test_a_live_lease_is_not_taken(store: Store) -> None:
    store.acquire_lease("srv-a", ttl_s=10)
    other = store.acquire_lease("srv-b", ttl_s=10)
    assert (other.holder, other.epoch) == ("srv-a", 1)
    assert other.remaining_s > 9


def test_an_expired_lease_goes_to_the_next_epoch(store: Store) -> None:
    store.acquire_lease("srv-a", ttl_s=0.05)
    time.sleep(0.1)
    taken = store.acquire_lease("srv-b", ttl_s=10)
    assert (taken.holder, taken.epoch) == ("srv-b", 2)
    # The old holder cannot renew what it lost.
    assert store.acquire_lease("srv-a", ttl_s=10).holder == "srv-b"


def test_a_released_lease_is_taken_at_once(store: Store) -> None:
    lease = store.acquire_lease("srv-a", ttl_s=60)
    store.release_lease("srv-a", lease.epoch)
    assert store.acquire_lease("srv-b", ttl_s=60).epoch == 2


def test_release_by_a_stale_holder_changes_nothing(store: Store) -> None:
    store.acquire_lease("srv-a", ttl_s=0.05)
    time.sleep(0.1)
    store.acquire_lease("srv-b", ttl_s=60)
    store.release_lease("srv-a", 1)
    lease = store.lease()
    assert lease is not None and (lease.holder, lease.epoch) == ("srv-b", 2) and lease.remaining_s > 50


def test_fenced_writes_need_the_current_epoch(store: Store) -> None:
    held: list[tuple[str, int] | None] = [None]
    leader = store.fenced(lambda: held[0])
    event = EventInput(level="info", reason="R", message="m", workload="w")
    with pytest.raises(FencedError):
        leader.add_events([event])  # holds nothing
    lease = store.acquire_lease("srv-a", ttl_s=0.05)
    held[0] = (lease.holder, lease.epoch)
    leader.add_events([event])
    time.sleep(0.1)
    store.acquire_lease("srv-b", ttl_s=60)
    with pytest.raises(FencedError, match="srv-b"):
        leader.add_events([event])  # woke up after losing the lease
    assert len(store.events(workload="w")) == 1
    store.add_events([event])  # the unfenced store (the API's) is unaffected


def test_only_one_of_many_contenders_wins(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    winners: list[tuple[str, int]] = []
    lock = threading.Lock()

    def contend(i: int) -> None:
        lease = stores[i].acquire_lease(f"srv-{i}", ttl_s=30)
        if lease.holder == f"srv-{i}":
            with lock:
                winners.append((lease.holder, lease.epoch))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and winners[0][1] == 1


def test_members_age_out_and_leave(store: Store, clock: FakeClock) -> None:
    store.heartbeat(MemberInput("srv-1", "server", "http://127.0.0.1:8700", "h", 11))
    store.heartbeat(MemberInput("gw-1", "gateway", "http://127.0.0.1:8080", "h", 12))
    assert [(m.role, m.id) for m in store.members(max_age_s=10)] == [("gateway", "gw-1"), ("server", "srv-1")]
    clock.advance(20)
    store.heartbeat(MemberInput("gw-1", "gateway", "http://127.0.0.1:8080", "h", 12))
    fresh = store.members(max_age_s=10)
    assert [m.id for m in fresh] == ["gw-1"] and fresh[0].started_at < fresh[0].last_seen
    store.leave("gw-1")
    assert store.members(max_age_s=10) == []


def test_a_shared_setting_is_settled_once(store: Store) -> None:
    assert store.control_setting("key-check") is None
    assert store.settle_control_setting("key-check", "a") == "a"
    assert store.settle_control_setting("key-check", "b") == "a"
    assert store.control_setting("key-check") == "a"
