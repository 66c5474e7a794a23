"""Job runs and attempts in the store: created once, moved whole, final runs never change again."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from polycloud.errors import ConflictError, NotFoundError, UserError
from polycloud.state import Store
from polycloud.state.job_records import AttemptInput

from .support import T0, FakeClock


def attempt(
    number: int, cluster: str, *, moved: int = 0, egress: float = 0.0, at: datetime = T0
) -> AttemptInput:
    return AttemptInput(number, cluster, 4000 + number, 0.5, 2, at, moved, egress)


def test_a_run_is_created_once_per_job_revision(store: Store) -> None:
    first = store.job_run("train", 1, "spot-a")
    again = store.job_run("train", 1, "elsewhere")
    assert first == again and first.state == "pending" and first.cluster == "spot-a"
    assert store.job_run("train", 2, "spot-b").id != first.id
    assert [(r.job, r.revision) for r in store.job_runs()] == [("train", 1), ("train", 2)]
    assert store.job_runs("other") == []


def test_attempts_move_the_run_and_add_egress_atomically(store: Store, clock: FakeClock) -> None:
    run = store.job_run("train", 1, "spot-a")
    store.add_job_attempt(run.id, attempt(1, "spot-a"))
    clock.advance(3600)
    store.end_job_attempt(run.id, 1, state="preempted", run_state="pending", exit_code=143, message="m")
    store.add_job_attempt(run.id, attempt(2, "spot-b", moved=2_000_000_000, egress=0.18, at=clock.now))

    (stored,) = store.job_runs("train")
    assert (stored.state, stored.cluster, stored.bytes_moved, stored.egress_usd) == (
        "running",
        "spot-b",
        2e9,
        0.18,
    )
    first, second = stored.attempts
    assert (first.state, first.exit_code, first.ended_at is not None) == ("preempted", 143, True)
    assert (second.state, second.pid, second.ended_at) == ("running", 4002, None)
    assert stored.restarts == 1
    # an hour on 2 nodes at $0.5 each for both attempts (the second one still runs), plus the egress
    assert stored.cost_usd(T0 + timedelta(hours=2)) == pytest.approx(1.0 + 1.0 + 0.18)


def test_a_final_run_never_changes_again(store: Store) -> None:
    run = store.job_run("train", 1, "spot-a")
    store.add_job_attempt(run.id, attempt(1, "spot-a"))
    assert store.set_job_state(run.id, "cancelled", "by the user")
    assert not store.set_job_state(run.id, "running")
    store.end_job_attempt(run.id, 1, state="cancelled", run_state="succeeded")  # a late report
    (stored,) = store.job_runs("train")
    assert stored.state == "cancelled" and stored.attempts[0].state == "cancelled"
    with pytest.raises(ConflictError):
        store.add_job_attempt(run.id, attempt(2, "spot-a"))


def test_an_attempt_number_is_recorded_once(store: Store) -> None:
    run = store.job_run("train", 1, "spot-a")
    store.add_job_attempt(run.id, attempt(1, "spot-a"))
    with pytest.raises(ConflictError):
        store.add_job_attempt(run.id, attempt(1, "spot-b"))
    assert [a.cluster for a in store.job_runs("train")[0].attempts] == ["spot-a"]


def test_unknown_runs_and_bad_inputs_are_refused(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.set_job_state(999, "running")
    run = store.job_run("train", 1, "spot-a")
    with pytest.raises(NotFoundError):
        store.end_job_attempt(run.id, 1, state="failed", run_state="failed")
    with pytest.raises(UserError):
        AttemptInput(0, "spot-a", None, 0.5, 1, T0)
    with pytest.raises(UserError):
        AttemptInput(1, "spot-a", None, 0.5, 1, datetime(2026, 1, 1))  # naive
