"""Load reports: each gateway replaces its own rows atomically; readers see fresh rows of every gateway."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event

from polycloud.errors import UserError
from polycloud.exchange import LoadReport
from polycloud.state import Store

from .support import T0, FakeClock


class InjectedFailure(RuntimeError):
    """Raised by the test in the middle of a transaction."""


def row(service: str, cluster: str, mean: float = 1.0, **fields: Any) -> LoadReport:
    """A load row with `mean` in flight on average and quiet defaults for the rest."""
    base = LoadReport(
        service, cluster, in_flight=mean, in_flight_mean=mean, rps=10.0, error_rate=0.0, p99_ms=5.0
    )
    return replace(base, **fields)


def test_report_replaces_only_that_gateways_rows(store: Store, clock: FakeClock) -> None:
    assert store.load(max_age_s=5) == []
    store.report_load("gw-a", [row("fraud", "east", 2.5, error_rate=0.25, p99_ms=12.0), row("chat", "west")])
    store.report_load("gw-b", [row("fraud", "east", 1.0)])

    loaded = store.load(max_age_s=5)
    assert [(r.service, r.cluster, r.gateway_id) for r in loaded] == [
        ("chat", "west", "gw-a"),
        ("fraud", "east", "gw-a"),
        ("fraud", "east", "gw-b"),
    ]
    assert loaded[1] == row(
        "fraud", "east", 2.5, error_rate=0.25, p99_ms=12.0, gateway_id="gw-a", updated_at=T0
    )

    clock.advance(1)
    store.report_load("gw-a", [row("fraud", "east", 4.0)])  # chat/west no longer served by gw-a
    loaded = store.load(max_age_s=5)
    assert [(r.service, r.cluster, r.gateway_id, r.in_flight_mean) for r in loaded] == [
        ("fraud", "east", "gw-a", 4.0),
        ("fraud", "east", "gw-b", 1.0),
    ]
    store.report_load("gw-a", [])
    assert [r.gateway_id for r in store.load(max_age_s=5)] == ["gw-b"]


def test_load_returns_only_fresh_rows(store: Store, clock: FakeClock) -> None:
    store.report_load("gw-old", [row("fraud", "east")])
    clock.advance(4)
    store.report_load("gw-new", [row("fraud", "east")])
    clock.advance(2)
    assert [r.gateway_id for r in store.load(max_age_s=5)] == ["gw-new"]
    assert [r.gateway_id for r in store.load(max_age_s=10)] == ["gw-new", "gw-old"]
    clock.advance(3600)
    store.report_load("gw-new", [row("fraud", "east")])  # forgets long-gone gateways on the way
    assert [r.gateway_id for r in store.load(max_age_s=1e9)] == ["gw-new"]


def test_reports_are_shared_between_stores(open_store: Callable[[], Store]) -> None:
    writer, reader = open_store(), open_store()
    writer.report_load("gw-a", [row("fraud", "east", 3.0)])
    assert [r.in_flight_mean for r in reader.load(max_age_s=5)] == [3.0]


def test_report_is_atomic(store: Store) -> None:
    store.report_load("gw-a", [row("fraud", "east", 2.0)])

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO LOAD_REPORTS"):
            raise InjectedFailure(statement)

    event.listen(store.engine, "before_cursor_execute", fail)
    try:
        with pytest.raises(InjectedFailure):
            store.report_load("gw-a", [row("fraud", "east", 9.0)])
    finally:
        event.remove(store.engine, "before_cursor_execute", fail)
    assert [r.in_flight_mean for r in store.load(max_age_s=5)] == [2.0]


def test_bad_reports_are_refused(store: Store) -> None:
    with pytest.raises(UserError, match="one row per"):
        store.report_load("gw-a", [row("fraud", "east"), row("fraud", "east")])
    with pytest.raises(UserError, match="other gateways: gw-b"):
        store.report_load("gw-a", [row("fraud", "east", gateway_id="gw-b")])
    with pytest.raises(UserError, match="gateway_id must not be empty"):
        store.report_load(" ", [])
    with pytest.raises(UserError, match="error_rate"):
        row("fraud", "east", error_rate=1.5)
    with pytest.raises(UserError, match="rps"):
        row("fraud", "east", rps=float("nan"))
    with pytest.raises(UserError, match="in_flight_mean"):
        row("fraud", "east", in_flight_mean=-1.0)
    assert store.load(max_age_s=5) == []
