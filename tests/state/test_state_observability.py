"""SLI minutes, incidents with timelines, anomalies and the event cursor in the state store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polycloud.errors import NotFoundError, UserError
from polycloud.state import EventInput, Store
from polycloud.state.obs_records import AnomalyInput, SliMinute

from .support import T0, FakeClock


def test_sli_minutes_are_replaced_by_key_and_read_since(store: Store) -> None:
    row = SliMinute("s", "c", "traffic", T0, 10.0, 1.0, 12.0)
    store.put_sli_minutes([row])
    store.put_sli_minutes([SliMinute("s", "c", "traffic", T0, 20.0, 2.0, 14.0)])
    store.put_sli_minutes([SliMinute("s", "c", "probe", T0 + timedelta(minutes=1), 2.0, 0.0, 5.0)])
    found = store.sli_minutes(T0)
    assert [(r.source, r.requests) for r in found] == [("probe", 2.0), ("traffic", 20.0)]
    assert store.sli_minutes(T0 + timedelta(minutes=1))[0].source == "probe"


def test_bad_sli_minutes_are_refused(store: Store) -> None:
    with pytest.raises(UserError, match="whole minute"):
        store.put_sli_minutes([SliMinute("s", "c", "traffic", T0 + timedelta(seconds=5), 1, 0, 0)])
    with pytest.raises(UserError, match="errors <= requests"):
        store.put_sli_minutes([SliMinute("s", "c", "traffic", T0, 1, 2, 0)])


def test_totals_count_requests_meeting_each_services_objective(store: Store, clock: FakeClock) -> None:
    clock.now = T0 + timedelta(minutes=10)
    store.put_sli_minutes(
        [
            SliMinute("s", "c", "traffic", T0, 100, 1, 90.0),
            SliMinute("s", "c", "traffic", T0 + timedelta(minutes=1), 50, 0, 300.0),
            SliMinute("t", "c", "traffic", T0, 10, 0, 300.0),
        ]
    )
    totals = store.sli_totals(3600, {"s": 100.0})
    assert totals == [("s", "c", "traffic", 150.0, 1.0, 100.0), ("t", "c", "traffic", 10.0, 0.0, 10.0)]


def test_old_observations_are_forgotten(store: Store, clock: FakeClock) -> None:
    store.put_sli_minutes([SliMinute("s", "c", "traffic", T0, 1, 0, 1)])
    store.add_anomalies([AnomalyInput("s", "c", "rps", 1, 2, 3, "m")])
    clock.advance(7200)
    store.forget_observations(3600)
    assert store.sli_minutes(T0) == [] and store.anomalies(10_000) == []


def test_incidents_keep_a_timeline_and_resolve(store: Store) -> None:
    store.add_events([EventInput("warning", "ReplicaFailed", "x", workload="s", cluster="c")])
    store.add_events([EventInput("warning", "FailoverStarted", "y", workload="s", cluster="c")])
    first, second = (e.id for e in store.events_after(0))
    incident = store.open_incident("failover", "failover of s", [first, second], service="s", cluster="c")
    store.attach_incident_events(incident, [second])  # already there: skipped
    [found] = store.incidents(state="open")
    assert [e.reason for e in found.timeline] == ["ReplicaFailed", "FailoverStarted"]
    store.attach_incident_events(incident, [], resolve=True)
    assert store.incidents(state="open") == []
    [done] = store.incidents()
    assert done.state == "resolved" and done.resolved_at is not None
    assert done.to_json()["timeline"][1]["reason"] == "FailoverStarted"
    with pytest.raises(NotFoundError):
        store.attach_incident_events(999, [])


def test_the_event_cursor(store: Store) -> None:
    assert store.last_event_id() == 0
    store.add_events([EventInput("info", f"E{i}", "m") for i in range(3)])
    last = store.last_event_id()
    assert [e.reason for e in store.events_after(last - 2)] == ["E1", "E2"]
    assert store.events_after(last) == []


def test_anomalies_newest_first(store: Store, clock: FakeClock) -> None:
    store.add_anomalies([AnomalyInput("s", "c", "rps", 1, 2, 3, "first")])
    clock.advance(10)
    store.add_anomalies([AnomalyInput("s", "c", "latency", 9, 2, 7, "second")])
    assert [a.message for a in store.anomalies(60)] == ["second", "first"]
    assert store.anomalies(5)[0].to_json()["signal"] == "latency"
