"""Events become incidents with timelines: failovers, rollbacks, SLO and budget alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from polycloud.obs.incidents import IncidentTracker
from polycloud.state import EventInput, Store


def _feed(
    store: Store, tracker: IncidentTracker, events: list[EventInput], cursor: int, now: datetime
) -> int:
    store.add_events(events)
    new = store.events_after(cursor)
    tracker.feed(new, now)
    return new[-1].id if new else cursor


def test_a_failover_incident_runs_from_the_failures_to_the_failback(store: Store) -> None:
    now = datetime.now(UTC)
    store.add_events(
        [EventInput("warning", "ReplicaFailed", "fraud-a-0 died", workload="fraud", cluster="a")]
    )
    cursor = store.last_event_id()
    tracker = IncidentTracker(store)
    cursor = _feed(
        store,
        tracker,
        [
            EventInput("warning", "FailoverStarted", "primary a down", workload="fraud", cluster="a"),
            EventInput("info", "ReplicaStarted", "standby grows", workload="fraud", cluster="b"),
            EventInput("info", "ReplicaStarted", "unrelated", workload="other", cluster="c"),
        ],
        cursor,
        now,
    )
    [incident] = store.incidents(state="open")
    assert tracker.opened == [incident.id] and incident.kind == "failover" and incident.service == "fraud"
    assert [e.reason for e in incident.timeline] == ["ReplicaFailed", "FailoverStarted", "ReplicaStarted"]
    _feed(
        store,
        tracker,
        [EventInput("info", "FailbackCompleted", "back", workload="fraud", cluster="a")],
        cursor,
        now,
    )
    [done] = store.incidents()
    assert done.state == "resolved" and done.timeline[-1].reason == "FailbackCompleted"


def test_a_second_alert_of_a_kind_joins_the_open_incident(store: Store) -> None:
    tracker = IncidentTracker(store)
    now = datetime.now(UTC)
    cursor = _feed(store, tracker, [EventInput("warning", "SloBurnAlert", "burn", workload="s")], 0, now)
    _feed(store, tracker, [EventInput("warning", "SloBurnAlert", "burn again", workload="s")], cursor, now)
    [incident] = store.incidents()
    assert incident.kind == "slo-burn" and len(incident.timeline) == 2


def test_rollbacks_and_budget_alerts_resolve_once_quiet(store: Store) -> None:
    tracker = IncidentTracker(store, quiet_s=60)
    now = datetime.now(UTC)
    cursor = _feed(
        store,
        tracker,
        [
            EventInput("warning", "RolloutRolledBack", "canary failed", workload="s"),
            EventInput("warning", "BudgetAlert", "team x at 80 %"),
        ],
        0,
        now,
    )
    assert {i.kind for i in store.incidents(state="open")} == {"rollback", "budget"}
    _feed(store, tracker, [], cursor, now + timedelta(seconds=61))
    assert store.incidents(state="open") == []


def test_a_new_tracker_picks_up_open_incidents(store: Store) -> None:
    now = datetime.now(UTC)
    cursor = _feed(
        store, IncidentTracker(store), [EventInput("warning", "SloBurnAlert", "b", workload="s")], 0, now
    )
    again = IncidentTracker(store)
    _feed(store, again, [EventInput("info", "SloBurnResolved", "ok", workload="s")], cursor, now)
    assert store.incidents(state="open") == []


def test_a_drill_is_an_incident_of_its_cluster_from_start_to_end(store: Store) -> None:
    tracker = IncidentTracker(store)
    now = datetime.now(UTC)
    cursor = _feed(
        store,
        tracker,
        [
            EventInput("warning", "DrillStarted", "outage drill", cluster="a"),
            EventInput("warning", "DrillStarted", "brownout drill", cluster="b"),
            EventInput("warning", "ReplicaFailed", "shop-a-0 died", workload="shop", cluster="a"),
            EventInput("info", "ReplicaStarted", "elsewhere", workload="shop", cluster="c"),
        ],
        0,
        now,
    )
    by_cluster = {i.cluster: i for i in store.incidents(state="open")}
    assert set(by_cluster) == {"a", "b"} and by_cluster["a"].title == "drill of a: outage drill"
    assert [e.reason for e in by_cluster["a"].timeline] == ["DrillStarted", "ReplicaFailed"]
    _feed(store, tracker, [EventInput("warning", "DrillEnded", "cleared", cluster="a")], cursor, now)
    assert [i.cluster for i in store.incidents(state="open")] == ["b"]
    [done] = store.incidents(state="resolved")
    assert done.timeline[-1].reason == "DrillEnded"
