"""Canary rollouts and per-revision counts in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from polycloud.errors import ConflictError, NotFoundError, UserError
from polycloud.exchange import RevisionCounts, empty_buckets
from polycloud.state import Store

from .support import FakeClock, workload


def two_revisions(store: Store) -> None:
    for version in (1, 2):
        store.apply(workloads=[workload("fraud", version)], documents=[], author="alice", message="m")


def test_a_new_rollout_supersedes_the_active_one(store: Store) -> None:
    two_revisions(store)
    first = store.start_rollout("fraud", baseline=1, canary=2, steps=[5, 50, 100])
    assert (first.state, first.weight, first.step) == ("progressing", 5, 0)
    second = store.start_rollout("fraud", baseline=1, canary=3, steps=[100])
    older = store.rollouts("fraud")[1]
    assert (older.id, older.state, older.weight) == (first.id, "superseded", 0)
    assert [r.id for r in store.active_rollouts()] == [second.id]


def test_steps_must_end_at_100(store: Store) -> None:
    two_revisions(store)
    with pytest.raises(UserError, match="ending at 100"):
        store.start_rollout("fraud", baseline=1, canary=2, steps=[5, 50])


def test_rolling_back_ends_the_rollout_and_restores_the_baseline_in_one_go(store: Store) -> None:
    two_revisions(store)
    rollout = store.start_rollout("fraud", baseline=1, canary=2, steps=[50, 100])
    ended = store.end_rollout(
        "fraud", state="rolled-back", message="errors", author="controller", rollout_id=rollout.id
    )
    assert ended.state == "rolled-back" and not store.active_rollouts()
    restored = store.history("fraud")[-1]
    assert (restored.number, restored.spec, restored.author) == (3, workload("fraud", 1).spec, "controller")
    with pytest.raises(NotFoundError):
        store.end_rollout("fraud", state="aborted", message="again", author="bob")


def test_promotion_keeps_the_canary_as_the_desired_state(store: Store) -> None:
    two_revisions(store)
    store.start_rollout("fraud", baseline=1, canary=2, steps=[100])
    store.end_rollout("fraud", state="succeeded", message="promoted", author="controller")
    assert [r.number for r in store.history("fraud")] == [1, 2]
    assert store.rollouts("fraud")[0].weight == 100


def test_pause_and_resume_are_checked_and_resume_restarts_the_bake(store: Store, clock: FakeClock) -> None:
    two_revisions(store)
    rollout = store.start_rollout("fraud", baseline=1, canary=2, steps=[50, 100])
    store.progress_rollout(rollout.id, step_started_at=clock.now)
    assert store.control_rollout("fraud", to="paused", message="hold").state == "paused"
    with pytest.raises(ConflictError, match="already paused"):
        store.control_rollout("fraud", to="paused", message="hold")
    resumed = store.control_rollout("fraud", to="progressing", message="go")
    assert resumed.step_started_at is None
    with pytest.raises(NotFoundError, match="no rollout in progress"):
        store.control_rollout("other", to="paused", message="hold")


def test_progress_on_an_ended_rollout_is_refused_quietly(store: Store) -> None:
    two_revisions(store)
    rollout = store.start_rollout("fraud", baseline=1, canary=2, steps=[100])
    store.end_rollout("fraud", state="aborted", message="stop", author="bob")
    assert store.progress_rollout(rollout.id, step=1) is None


def test_revision_counts_are_replaced_per_gateway_and_age_out(store: Store, clock: FakeClock) -> None:
    row = RevisionCounts("fraud", 2, 10, 1, tuple(empty_buckets()))
    store.report_revision_counts("g1", [row])
    store.report_revision_counts("g2", [row])
    store.report_revision_counts("g1", [RevisionCounts("fraud", 2, 12, 1, tuple(empty_buckets()))])
    assert sorted((c.gateway_id, c.attempts) for c in store.revision_counts("fraud", 60)) == [
        ("g1", 12),
        ("g2", 10),
    ]
    clock.advance(120)
    assert store.revision_counts("fraud", 60) == []
    with pytest.raises(UserError, match="bad revision counts"):
        store.report_revision_counts("g1", [RevisionCounts("fraud", 2, 1, 2, tuple(empty_buckets()))])
