"""The cost ledger: rate accruals against a shared cursor, running totals, hourly rows, budget alerts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polycloud.errors import UserError
from polycloud.state import EventInput, Store
from polycloud.state.ledger import (
    CATEGORIES,
    SOURCES,
    BudgetAlertInput,
    LedgerTag,
    RateAccrual,
    TotalAccrual,
)
from polycloud.state.tables_accounting import LEDGER_CATEGORIES, LEDGER_SOURCES

from .support import FakeClock

HOURLY = 0.72


def tag(workload: str = "fraud", cluster: str = "aws-use1", **fields: object) -> LedgerTag:
    base: dict[str, object] = {
        "workload": workload,
        "kind": "Service",
        "revision": 1,
        "cluster": cluster,
        "provider": "aws",
        "category": "compute",
        "source": "replicas",
        "labels": {"team": "risk"},
        "project": "p1",
    }
    return LedgerTag(**(base | fields))  # type: ignore[arg-type]


def replicas(count: int, workload: str = "fraud") -> RateAccrual:
    return RateAccrual(tag(workload), float(count), HOURLY / 3600)


def test_typed_names_match_the_table_constraints() -> None:
    assert CATEGORIES == LEDGER_CATEGORIES and SOURCES == LEDGER_SOURCES


def test_the_first_pass_sets_the_cursor_and_later_ones_accrue_elapsed_seconds(
    store: Store, clock: FakeClock
) -> None:
    assert store.accrue_cost([replicas(3)], [], max_gap_s=30) == 0.0
    assert store.cost_lines() == []
    clock.advance(10)
    assert store.accrue_cost([replicas(3)], [], max_gap_s=30) == 10.0
    clock.advance(5)
    store.accrue_cost([replicas(2)], [], max_gap_s=30)

    [line] = store.cost_lines()
    assert line.quantity == pytest.approx(3 * 10 + 2 * 5)  # replica-seconds
    assert line.usd == pytest.approx(40 / 3600 * HOURLY)
    assert line.tag.labels == {"team": "risk"} and line.tag.project == "p1"


def test_unobserved_time_is_charged_only_up_to_the_gap(store: Store, clock: FakeClock) -> None:
    store.accrue_cost([], [], max_gap_s=30)
    clock.advance(3600)
    assert store.accrue_cost([replicas(1)], [], max_gap_s=30) == 30.0
    assert store.cost_lines()[0].quantity == pytest.approx(30)


def test_two_accountants_on_one_database_never_count_a_second_twice(
    open_store: Callable[[], Store], clock: FakeClock
) -> None:
    first, second = open_store(), open_store()
    first.accrue_cost([], [], max_gap_s=30)
    clock.advance(4)
    first.accrue_cost([replicas(1)], [], max_gap_s=30)
    second.accrue_cost([replicas(1)], [], max_gap_s=30)  # same instant: nothing left to accrue
    assert first.cost_lines()[0].quantity == pytest.approx(4)


def test_totals_accrue_only_their_growth(store: Store, clock: FakeClock) -> None:
    job = tag("train", kind="Job", source="job-attempts")
    store.accrue_cost([], [TotalAccrual(job, 7200.0, 2.0)], max_gap_s=30)
    store.accrue_cost([], [TotalAccrual(job, 7200.0, 2.0)], max_gap_s=30)
    clock.advance(3600)  # the next hour gets only the growth
    store.accrue_cost([], [TotalAccrual(job, 10800.0, 3.0)], max_gap_s=30)

    [line] = store.cost_lines()
    assert (line.quantity, line.usd) == (pytest.approx(10800.0), pytest.approx(3.0))
    assert line.last_hour > line.first_hour
    [late] = store.cost_lines(since=clock.now)
    assert late.usd == pytest.approx(1.0)


def test_a_total_over_every_cluster_is_compared_with_every_cluster(store: Store) -> None:
    a = tag("train", "acme", kind="Job", category="egress", source="checkpoints")
    b = tag("train", "borealis", kind="Job", category="egress", source="checkpoints")
    store.accrue_cost([], [TotalAccrual(a, 2.0, 0.2, any_cluster=True)], max_gap_s=30)
    store.accrue_cost([], [TotalAccrual(b, 5.0, 0.5, any_cluster=True)], max_gap_s=30)
    by_cluster = {line.tag.cluster: line.usd for line in store.cost_lines()}
    assert by_cluster == {"acme": pytest.approx(0.2), "borealis": pytest.approx(0.3)}


def test_each_key_and_hour_is_one_row(store: Store, clock: FakeClock) -> None:
    store.accrue_cost([], [], max_gap_s=30)
    for _ in range(5):
        clock.advance(2)
        store.accrue_cost([replicas(1), replicas(2, "triage")], [], max_gap_s=30)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM cost_ledger").scalar() == 2


def test_bad_tags_are_refused() -> None:
    with pytest.raises(UserError, match="ledger source"):
        tag(source="requests")
    with pytest.raises(UserError, match=">= 0"):
        RateAccrual(tag(), -1.0, 0.1)


def alert(threshold: int, month: str = "2025-03") -> BudgetAlertInput:
    event = EventInput(level="warning", reason="BudgetAlert", message=f"team=risk past {threshold}%")
    return BudgetAlertInput("limits", "team", "risk", month, threshold, 60.0, 100.0, event)


def test_budget_alerts_are_recorded_once_per_threshold_and_month(store: Store) -> None:
    assert [a.threshold for a in store.record_budget_alerts([alert(50)])] == [50]
    assert [a.threshold for a in store.record_budget_alerts([alert(50), alert(80)])] == [80]
    assert [a.threshold for a in store.record_budget_alerts([alert(50, "2025-04")])] == [50]
    events = store.events()
    assert [e.reason for e in events] == ["BudgetAlert"] * 3
    assert {e.message for e in events} == {"team=risk past 50%", "team=risk past 80%"}
