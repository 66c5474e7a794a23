"""`Leadership`: one leader at a time, a stop hands the lease over at once, a lapsed lease stops acting."""

from __future__ import annotations

import time
from pathlib import Path

from polycloud.server.leadership import Leadership, LeaseTiming
from polycloud.state import MemberInput, Store


def _member(name: str) -> MemberInput:
    return MemberInput(name, "server", f"http://{name}", "host", 1)


def test_one_leads_the_other_follows_and_takes_over_when_it_stops(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    gains: list[str] = []
    a = Leadership(store, _member("srv-a"), on_gain=lambda: gains.append("a"))
    b = Leadership(store, _member("srv-b"), on_gain=lambda: gains.append("b"))
    a.beat()
    b.beat()
    assert a.holds() and not b.holds() and a.fence() == ("srv-a", 1) and b.fence() is None
    assert {m.id for m in store.members(max_age_s=60)} == {"srv-a", "srv-b"}
    a.stop()  # releases the lease and leaves
    b.beat()
    assert b.fence() == ("srv-b", 2) and not a.holds() and gains == ["a", "b"]
    assert {m.id for m in store.members(max_age_s=60)} == {"srv-b"}
    store.close()


def test_a_leader_that_cannot_renew_stops_acting_before_its_lease_ends(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    timing = LeaseTiming(lease_s=30.0, renew_s=60.0, margin_s=28.5)  # acts for 1.5 s, the row says 30 s
    a = Leadership(store, _member("srv-a"), timing=timing)
    a.beat()
    assert a.holds()
    time.sleep(1.6)  # past lease - margin, long before the lease: it already stops by its own clock
    assert not a.holds() and a.fence() is None
    lease = store.lease()
    assert lease is not None and lease.holder == "srv-a" and lease.remaining_s > 20
    store.close()
