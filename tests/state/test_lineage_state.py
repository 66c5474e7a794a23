"""Lineage events in the store: kept once per (run, type), in order; the outbox marks and retries."""

from __future__ import annotations

from datetime import timedelta

from polycloud.state import Store
from polycloud.state.lineage import LineageEventInput

from .support import T0, FakeClock


def event(run: str, kind: str, job: str = "train", service: bool = False) -> LineageEventInput:
    facts = {"kind": "service" if service else "job"}
    payload = {"eventType": kind, "run": {"runId": run, "facets": {"polycloud_run": facts}}}
    return LineageEventInput(run, kind, T0, job, payload)


def test_an_event_is_kept_once_per_run_and_type(store: Store) -> None:
    assert store.add_lineage_events([event("a", "START"), event("a", "START"), event("b", "START")]) == 2
    assert store.add_lineage_events([event("a", "START"), event("a", "COMPLETE")]) == 1
    assert [(e.run_id, e.event_type) for e in store.lineage_events()] == [
        ("a", "START"),
        ("b", "START"),
        ("a", "COMPLETE"),
    ]
    assert store.lineage_keys() == {("a", "START"), ("b", "START"), ("a", "COMPLETE")}
    assert [e.run_id for e in store.lineage_events("other")] == []


def test_open_runs_are_started_and_not_ended(store: Store) -> None:
    store.add_lineage_events(
        [
            event("a", "START"),
            event("a", "ABORT"),
            event("s", "START", "api", service=True),
            event("b", "START"),
        ]
    )
    assert [e.run_id for e in store.open_lineage_runs("service")] == ["s"]
    assert [e.run_id for e in store.open_lineage_runs("job")] == ["b"]


def test_the_outbox_marks_sent_and_keeps_failures(store: Store, clock: FakeClock) -> None:
    store.add_lineage_events([event("a", "START"), event("a", "COMPLETE")])
    first, second = store.unsent_lineage_events()
    store.mark_lineage_failed(first.id, "refused", T0 + timedelta(seconds=1))
    failed, _ = store.unsent_lineage_events()
    assert (failed.tries, failed.last_error, failed.sent_at) == (1, "refused", None)
    clock.advance(5)
    store.mark_lineage_sent(first.id)
    store.mark_lineage_sent(first.id)  # a second mark changes nothing
    assert [e.id for e in store.unsent_lineage_events()] == [second.id]
    sent = store.lineage_events()[0]
    assert (sent.sent_at, sent.tries, sent.last_error) == (clock.now, 2, "")
