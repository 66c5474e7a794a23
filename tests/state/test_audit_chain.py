"""The audit hash chain: appends link up, and every kind of tampering by direct SQL is found and named."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from polycloud.errors import UserError
from polycloud.state import Store
from polycloud.state.audit import GENESIS, entry_hash
from polycloud.state.records import AuditInput

from .support import T0, FakeClock


def fill(store: Store, clock: FakeClock, n: int = 8) -> None:
    for i in range(1, n + 1):
        clock.advance(1)
        store.audit(AuditInput(f"alice#{i}", "apply", f"svc{i}", revision=i, detail={"n": i, "f": 0.5}))


def sql(store: Store, *statements: str) -> None:
    with store.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_entries_link_into_a_chain(store: Store, clock: FakeClock) -> None:
    assert store.verify_audit().intact and store.verify_audit().entries == 0
    first = store.audit(AuditInput("alice#1", "token.create", "2", detail={"role": "viewer"}))
    second = store.audit(AuditInput("anonymous", "auth.denied", "/api/v1/status", outcome="denied"))

    assert (first.seq, first.prev_hash, first.time) == (1, GENESIS, T0)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    verdict = store.verify_audit()
    assert verdict.intact and (verdict.entries, verdict.head_seq, verdict.head_hash) == (2, 2, second.hash)
    assert store.audit_log(limit=10) == [second, first]
    assert store.audit_log(limit=1, before=2) == [first]


def test_bad_entries_are_refused_before_any_write(store: Store) -> None:
    with pytest.raises(UserError, match="outcome"):
        store.audit(AuditInput("a#1", "apply", outcome="maybe"))  # type: ignore[arg-type]
    with pytest.raises(UserError, match="actor"):
        store.audit(AuditInput(" ", "apply"))
    with pytest.raises(UserError, match="JSON"):
        store.audit(AuditInput("a#1", "apply", detail={"x": float("nan")}))
    with pytest.raises(UserError, match="limit"):
        store.audit_log(limit=0)
    assert store.verify_audit().entries == 0


TAMPERING: dict[str, tuple[list[str], int, str]] = {
    "edited field": (["UPDATE audit_log SET outcome = 'denied' WHERE seq = 4"], 4, "edited"),
    "edited detail": (['UPDATE audit_log SET detail = \'{"n": 40, "f": 0.5}\' WHERE seq = 5'], 5, "edited"),
    "edited hash": (["UPDATE audit_log SET hash = prev_hash WHERE seq = 6"], 6, "edited"),
    "deleted middle": (["DELETE FROM audit_log WHERE seq = 3"], 3, "deleted"),
    "deleted first": (["DELETE FROM audit_log WHERE seq = 1"], 1, "deleted"),
    "deleted last": (["DELETE FROM audit_log WHERE seq = 8"], 8, "deleted"),
    "deleted and renumbered": (
        [
            "DELETE FROM audit_log WHERE seq = 3",
            "UPDATE audit_log SET seq = seq + 100 WHERE seq > 3",
            "UPDATE audit_log SET seq = seq - 101 WHERE seq > 100",
        ],
        3,
        "deleted",
    ),
    "inserted at the end": (
        [
            "INSERT INTO audit_log (seq, time, actor, action, target, outcome, revision, detail, prev_hash,"
            " hash) SELECT 9, time, actor, action, target, outcome, revision, detail, hash, hash"
            " FROM audit_log WHERE seq = 8"
        ],
        9,
        "inserted",
    ),
    "inserted in the middle": (
        [
            "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 4",
            "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100",
            "INSERT INTO audit_log (seq, time, actor, action, target, outcome, revision, detail, prev_hash,"
            " hash) SELECT 4, time, 'mallory#9', action, target, outcome, revision, detail, hash, hash"
            " FROM audit_log WHERE seq = 3",
        ],
        4,
        "inserted",
    ),
    "reordered neighbours": (
        [
            "UPDATE audit_log SET seq = 100 WHERE seq = 5",
            "UPDATE audit_log SET seq = 5 WHERE seq = 6",
            "UPDATE audit_log SET seq = 6 WHERE seq = 100",
        ],
        5,
        "reordered",
    ),
    "reordered far apart": (
        [
            "UPDATE audit_log SET seq = 100 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 7",
            "UPDATE audit_log SET seq = 7 WHERE seq = 100",
        ],
        2,
        "reordered",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_found_and_named(store: Store, clock: FakeClock, case: str) -> None:
    fill(store, clock)
    statements, seq, kind = TAMPERING[case]
    sql(store, *statements)

    broken = store.verify_audit().broken
    assert broken is not None, case
    assert (broken.seq, broken.kind) == (seq, kind), broken.reason


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(store: Store, clock: FakeClock) -> None:
    fill(store, clock)
    third = store.audit_log(limit=1, before=4)[0]
    forged = AuditInput("mallory#9", third.action, third.target, third.outcome, third.revision, third.detail)
    new_hash = entry_hash(third.prev_hash, 3, forged, third.time)
    sql(store, f"UPDATE audit_log SET actor = 'mallory#9', hash = '{new_hash}' WHERE seq = 3")

    broken = store.verify_audit().broken
    assert broken is not None and (broken.seq, broken.kind) == (3, "edited"), broken


def test_a_value_that_no_longer_parses_counts_as_edited(tmp_path: Path, clock: FakeClock) -> None:
    # SQLite only: PostgreSQL's typed columns cannot hold an unparsable timestamp in the first place.
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}", clock=clock) as store:
        fill(store, clock)
        sql(store, "UPDATE audit_log SET time = 'yesterday' WHERE seq = 2")
        broken = store.verify_audit().broken
    assert broken is not None and (broken.seq, broken.kind) == (2, "edited")


APPENDER = """
import sys
from polycloud.state import Store
from polycloud.state.records import AuditInput
with Store.open(sys.argv[1]) as store:
    for i in range(25):
        store.audit(AuditInput(sys.argv[2], "drill.start", f"cluster{i}"))
"""


def test_two_processes_append_without_forking_the_chain(db_url: str, open_store: Callable[[], Store]) -> None:
    store = open_store()
    workers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, db_url, f"p{k}#1"], stderr=subprocess.PIPE)
        for k in range(2)
    ]
    outcomes = [(w.wait(timeout=120), w.stderr.read().decode() if w.stderr else "") for w in workers]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    verdict = store.verify_audit()
    assert verdict.intact and verdict.entries == verdict.head_seq == 50
    assert {e.actor for e in store.audit_log(limit=50)} == {"p0#1", "p1#1"}


def test_appends_go_on_after_tampering_and_keep_it_visible(store: Store, clock: FakeClock) -> None:
    fill(store, clock)
    sql(store, "DELETE FROM audit_log WHERE seq = 8")
    assert store.audit(AuditInput("a#1", "apply")).seq == 9
    broken = store.verify_audit().broken
    assert broken is not None and (broken.seq, broken.kind) == (8, "deleted")

    sql(store, "DELETE FROM audit_head")
    assert store.audit(AuditInput("a#1", "apply")).seq == 10
    sql(
        store,
        "INSERT INTO audit_log SELECT 11, time, actor, action, target, outcome, revision, detail, hash, hash"
        " FROM audit_log WHERE seq = 10",
    )
    assert store.audit(AuditInput("a#1", "apply")).seq == 12
