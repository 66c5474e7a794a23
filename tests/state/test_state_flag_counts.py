"""Flag evaluation counts: gateways add their windows' counts to the current minute, readers get them
summed over every gateway for a recent period, and counts older than a day are deleted."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from polycloud.errors import UserError
from polycloud.exchange import FlagCount
from polycloud.state import Store
from polycloud.state.flag_counts import KEEP_S
from polycloud.state.tables_flags import FlagEvaluationRow

from .support import FakeClock


def totals(store: Store, since_s: float) -> dict[tuple[str, str, str], int]:
    return {(c.flag, c.variant, c.error): c.count for c in store.flag_counts(since_s)}


def rows(store: Store) -> int:
    with store._session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(FlagEvaluationRow)) or 0)


def test_counts_add_up_per_minute_and_over_gateways(store: Store, clock: FakeClock) -> None:
    store.add_flag_counts("gw-a", [FlagCount("ranker", "on", "", 3), FlagCount("ranker", "off", "", 7)])
    store.add_flag_counts("gw-a", [FlagCount("ranker", "on", "", 2), FlagCount("ranker", "", "GENERAL", 1)])
    store.add_flag_counts("gw-b", [FlagCount("ranker", "off", "", 5), FlagCount("theme", "dark", "", 1)])
    assert rows(store) == 5  # one row per gateway, outcome and minute, however many reports
    clock.advance(120)
    store.add_flag_counts("gw-a", [FlagCount("ranker", "on", "", 10)])
    assert totals(store, 900) == {
        ("ranker", "", "GENERAL"): 1,
        ("ranker", "off", ""): 12,
        ("ranker", "on", ""): 15,
        ("theme", "dark", ""): 1,
    }
    assert totals(store, 60) == {("ranker", "on", ""): 10}  # only the minutes from a minute ago on
    assert all(c.gateway_id == "" for c in store.flag_counts(900))


def test_counts_older_than_a_day_are_deleted_by_a_report(store: Store, clock: FakeClock) -> None:
    store.add_flag_counts("gw-a", [FlagCount("ranker", "on", "", 3)])
    clock.advance(KEEP_S + 120)
    store.add_flag_counts("gw-b", [])  # even an empty report prunes
    assert rows(store) == 0 and totals(store, 10 * KEEP_S) == {}


def test_concurrent_reports_lose_no_addition(open_store: Callable[[], Store]) -> None:
    stores = [open_store(), open_store()]

    def report(i: int) -> None:
        stores[i % 2].add_flag_counts("gw-a", [FlagCount("ranker", "on", "", 1)])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(report, range(40)))
    assert totals(stores[0], 60) == {("ranker", "on", ""): 40}


def test_bad_counts_are_refused(store: Store) -> None:
    with pytest.raises(UserError, match="gateway_id"):
        store.add_flag_counts(" ", [])
    with pytest.raises(UserError, match="one count per"):
        store.add_flag_counts("gw", [FlagCount("f", "a", "", 1), FlagCount("f", "a", "", 2)])
    with pytest.raises(UserError, match="a variant and an error"):
        FlagCount("f", "a", "GENERAL", 1)
    with pytest.raises(UserError, match=">= 0"):
        FlagCount("f", "a", "", -1)
