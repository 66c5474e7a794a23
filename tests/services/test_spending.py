"""Spend per hour: hours aligned across keys, grouped like /cost, scoped to a project, windowed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.state.support import T0, FakeClock

from polycloud.cost.report import CostLine
from polycloud.errors import UserError
from polycloud.services import costing
from polycloud.services.spending import series, spend
from polycloud.state import Store
from polycloud.state.ledger import LedgerTag, RateAccrual, TotalAccrual

HOURLY = 0.72


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 's.db'}", clock=clock)
    yield opened
    opened.close()


def tag(workload: str, team: str, project: str, **fields: object) -> LedgerTag:
    base: dict[str, object] = {
        "workload": workload,
        "kind": "Service",
        "revision": 1,
        "cluster": "aws-use1",
        "provider": "aws",
        "category": "compute",
        "source": "replicas",
        "labels": {"team": team},
        "project": project,
    }
    return LedgerTag(**(base | fields))  # type: ignore[arg-type]


def running(workload: str, team: str, project: str, replicas: int = 1) -> RateAccrual:
    return RateAccrual(tag(workload, team, project), float(replicas), HOURLY / 3600)


def egress(workload: str, team: str, project: str, usd: float) -> TotalAccrual:
    t = tag(workload, team, project, category="egress", source="dataset-reads", cluster="gcp-euw4")
    return TotalAccrual(t, usd * 10, usd)


@pytest.fixture
def fleet(store: Store, clock: FakeClock) -> Store:
    """12:00-12:30 nothing (cursor set); 12:30 fraud 2 replicas + reco 1 for 30 min, and reco's
    egress; 13:30 fraud alone for an hour (reco gone)."""
    store.accrue_cost([], [], max_gap_s=7200)
    clock.now = T0 + timedelta(minutes=30)
    fleet_now = [running("fraud", "risk", "p1", 2), running("reco", "growth", "p2")]
    store.accrue_cost(fleet_now, [egress("reco", "growth", "p2", 1.5)], max_gap_s=7200)
    clock.now = T0 + timedelta(minutes=90)
    store.accrue_cost([running("fraud", "risk", "p1", 2)], [], max_gap_s=7200)
    return store


def test_hours_are_aligned_and_keys_without_cost_in_an_hour_get_zero(fleet: Store, clock: FakeClock) -> None:
    got = spend(fleet, "team", "7d", None, now=clock.now)
    assert got["hours"] == ["2025-03-01T12:00:00+00:00", "2025-03-01T13:00:00+00:00"]
    assert list(got["series"]) == ["risk", "growth"]  # dearest first
    half, hour = HOURLY / 2, HOURLY
    assert got["series"]["risk"] == pytest.approx([2 * half, 2 * hour])
    assert got["series"]["growth"] == pytest.approx([half + 1.5, 0.0])
    assert got["egress"] == {"risk": [0.0, 0.0], "growth": [1.5, 0.0]}
    assert got["totalUSD"] == pytest.approx(3 * half + 1.5 + 2 * hour)
    assert all(len(values) == len(got["hours"]) for values in got["series"].values())


@pytest.mark.parametrize("by", ["service", "cluster", "provider", "team", "missing-label"])
def test_keys_and_totals_match_the_cost_report(fleet: Store, clock: FakeClock, by: str) -> None:
    got = spend(fleet, by, None, None, now=clock.now)
    rows = costing.cost_report(fleet, by, None, None)["rows"]
    assert list(got["series"]) == [r["key"] for r in rows]
    for row in rows:
        assert sum(got["series"][row["key"]]) == pytest.approx(row["totalUSD"])
        assert sum(got["egress"][row["key"]]) == pytest.approx(row["egressUSD"])
    assert got["by"] == by


def test_a_project_sees_only_its_own_cost(fleet: Store, clock: FakeClock) -> None:
    p2 = spend(fleet, "service", "7d", "p2", now=clock.now)
    assert p2["hours"] == ["2025-03-01T12:00:00+00:00"] and list(p2["series"]) == ["reco"]
    assert p2["totalUSD"] == pytest.approx(HOURLY / 2 + 1.5)
    assert spend(fleet, "service", "7d", "nobody", now=clock.now) == {
        "by": "service",
        "hours": [],
        "series": {},
        "egress": {},
        "totalUSD": 0.0,
    }


def test_the_window_starts_at_the_hour_of_since(fleet: Store, clock: FakeClock) -> None:
    # now is 13:30: 30 min back is 13:00 (one hour), 31 min back reaches into 12:00's row
    assert spend(fleet, "team", "30m", None, now=clock.now)["hours"] == ["2025-03-01T13:00:00+00:00"]
    assert len(spend(fleet, "team", "31m", None, now=clock.now)["hours"]) == 2
    assert spend(fleet, "team", "2025-03-01T13:00", None, now=clock.now)["series"] == {
        "risk": [pytest.approx(2 * HOURLY)]
    }


@pytest.mark.parametrize(
    ("by", "since", "message"), [("a b", "7d", "--by must be"), ("team", "soon", "--since")]
)
def test_bad_keys_and_windows_are_user_errors(fleet: Store, by: str, since: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        spend(fleet, by, since, None)


def test_series_of_nothing_is_empty_and_lines_in_one_hour_add_up() -> None:
    assert series([], "service")["hours"] == []
    hour = T0
    lines = [
        (hour, CostLine("a", "Service", "c1", "aws", "compute", 1.0)),
        (hour, CostLine("a", "Service", "c2", "aws", "egress", 0.25)),
    ]
    got = series(lines, "service")
    assert got["series"] == {"a": [1.25]} and got["egress"] == {"a": [0.25]} and got["totalUSD"] == 1.25
    assert series(lines, "cluster")["series"] == {"c1": [1.0], "c2": [0.25]}
