"""Observed state: the replica snapshot and the event log, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from polycloud.errors import UserError
from polycloud.state import EventInput, Store

from .support import T0, FakeClock, replica


class InjectedFailure(RuntimeError):
    """Raised by the test in the middle of a transaction."""


def test_replace_replicas_replaces_the_whole_snapshot(store: Store) -> None:
    assert store.replicas() == []
    first = [replica("fraud", "gcp-euw4", 0, "starting"), replica("fraud", "aws-use1", 0, pid=1234)]
    store.replace_replicas(first)

    records = store.replicas()
    assert [r.id for r in records] == ["fraud-aws-use1-0", "fraud-gcp-euw4-0"]
    assert records[0] == first[1]
    assert (records[0].pid, records[1].pid, records[1].state) == (1234, None, "starting")
    assert records[0].updated_at == T0

    second = [replace(first[0], state="ready", updated_at=T0 + timedelta(seconds=3)), replica("chat", "a", 0)]
    store.replace_replicas(second)
    assert [(r.id, r.state) for r in store.replicas()] == [
        ("chat-a-0", "ready"),
        ("fraud-gcp-euw4-0", "ready"),
    ]

    store.replace_replicas([])
    assert store.replicas() == []


def test_replace_replicas_is_atomic(store: Store) -> None:
    old = [replica("fraud", "aws-use1", 0), replica("fraud", "aws-use1", 1)]
    store.replace_replicas(old)

    with pytest.raises(UserError, match="unique: fraud-aws-use1-0"):
        store.replace_replicas([replica("fraud", "aws-use1", 0), replica("fraud", "aws-use1", 0)])

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO REPLICAS"):
            raise InjectedFailure(statement)

    event.listen(store.engine, "before_cursor_execute", fail)
    try:
        with pytest.raises(InjectedFailure):
            store.replace_replicas([replica("chat", "b", 0)])
    finally:
        event.remove(store.engine, "before_cursor_execute", fail)
    assert store.replicas() == old


def test_events_come_newest_first_with_limit_and_filters(store: Store, clock: FakeClock) -> None:
    store.add_events(
        [EventInput("info", "ReplicaStarting", "starting 0", workload="fraud", cluster="aws-use1")]
    )
    clock.advance(1)
    store.add_events(
        [
            EventInput("info", "ReplicaStarted", "started 0", workload="fraud", cluster="aws-use1"),
            EventInput("warning", "QuotaLow", "2 GPUs left", cluster="gcp-euw4"),
            EventInput("error", "ReplicaFailed", "chat died", workload="chat", cluster="aws-use1"),
        ]
    )
    old = T0 - timedelta(hours=1)
    store.add_events([EventInput("info", "Imported", "from backup", workload="fraud", time=old)])

    events = store.events()
    # Same timestamp: the later insert comes first.
    assert [e.reason for e in events] == [
        "ReplicaFailed",
        "QuotaLow",
        "ReplicaStarted",
        "ReplicaStarting",
        "Imported",
    ]
    assert events[0].time == T0 + timedelta(seconds=1)
    assert events[-1].time == old
    assert events[1].workload is None
    assert [e.reason for e in store.events(limit=2)] == ["ReplicaFailed", "QuotaLow"]
    assert [e.reason for e in store.events(workload="fraud", limit=2)] == [
        "ReplicaStarted",
        "ReplicaStarting",
    ]
    assert [e.level for e in store.events(cluster="gcp-euw4")] == ["warning"]
    assert store.events(workload="nobody") == []
    with pytest.raises(UserError, match="at least 1"):
        store.events(limit=0)


def test_event_inputs_are_validated() -> None:
    with pytest.raises(UserError, match="CamelCase"):
        EventInput("info", "replica started", "x")
    with pytest.raises(UserError, match="event level"):
        EventInput("debug", "Started", "x")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="timezone-aware"):
        EventInput("info", "Started", "x", time=T0.replace(tzinfo=None))
