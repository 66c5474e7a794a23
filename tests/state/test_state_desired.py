"""Desired state: revisions, apply, prune, rollback and lookups, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from polycloud.errors import ConflictError, NotFoundError, UserError
from polycloud.state import Store

from .support import T0, FakeClock, document, workload


def apply(store: Store, *workloads: Any, documents: Any = (), prune: bool = True, message: str = "m") -> Any:
    return store.apply(
        workloads=list(workloads), documents=list(documents), author="alice", message=message, prune=prune
    )


def test_first_apply_records_revision_1(store: Store) -> None:
    result = apply(store, workload("fraud", project="risk"), workload("train", kind="Job"))

    assert [(c.name, c.kind, c.action, c.revision) for c in result.created] == [
        ("fraud", "Service", "created", 1),
        ("train", "Job", "created", 1),
    ]
    assert result.changed
    [fraud, train] = store.current()
    assert (fraud.name, fraud.number, fraud.project, train.kind) == ("fraud", 1, "risk", "Job")
    assert fraud.spec == workload("fraud").spec
    assert fraud.placement == workload("fraud").placement
    assert fraud.content_hash == workload("fraud").content_hash
    [revision] = store.history("fraud")
    assert (revision.number, revision.author, revision.message, revision.created_at) == (1, "alice", "m", T0)
    assert revision.created_at.tzinfo is UTC


def test_changed_content_appends_next_revision_and_keeps_old_ones(store: Store, clock: FakeClock) -> None:
    apply(store, workload("fraud", 1), message="first")
    clock.advance(60)
    result = apply(store, workload("fraud", 2), message="second")
    clock.advance(60)
    apply(store, workload("fraud", 3), message="third")

    assert [(c.action, c.revision) for c in result.workloads] == [("updated", 2)]
    history = store.history("fraud")
    assert [(r.number, r.spec["version"], r.message) for r in history] == [
        (1, 1, "first"),
        (2, 2, "second"),
        (3, 3, "third"),
    ]
    assert history[0].created_at == T0
    assert store.revision("fraud", 1) == history[0]
    assert store.current()[0].number == 3


def test_unchanged_content_makes_no_revision(store: Store, clock: FakeClock) -> None:
    apply(store, workload("fraud"), documents=[document("Cluster", "aws-use1")])
    clock.advance(60)
    result = apply(store, workload("fraud"), documents=[document("Cluster", "aws-use1")])

    assert [(c.action, c.revision) for c in result.workloads] == [("unchanged", 1)]
    assert [d.action for d in result.documents] == ["unchanged"]
    assert not result.changed
    assert len(store.history("fraud")) == 1
    assert store.current()[0].updated_at == T0


def test_revisions_cannot_be_updated_or_deleted_in_the_database(store: Store) -> None:
    apply(store, workload("fraud"))
    for statement in ("UPDATE revisions SET message = 'x'", "DELETE FROM revisions"):
        with pytest.raises(DBAPIError, match="immutable"), store.engine.begin() as connection:
            connection.execute(text(statement))
    assert store.history("fraud")[0].message == "m"


def test_prune_marks_undeclared_deleted_and_reapplying_revives_with_new_revision(store: Store) -> None:
    apply(
        store,
        workload("fraud"),
        workload("chat"),
        documents=[document("Cluster", "a"), document("Dataset", "d")],
    )

    pruned = apply(store, workload("chat"), documents=[document("Cluster", "a")])
    assert [(c.name, c.action, c.revision) for c in pruned.deleted] == [("fraud", "deleted", 1)]
    assert [(d.kind, d.name, d.action) for d in pruned.documents] == [
        ("Cluster", "a", "unchanged"),
        ("Dataset", "d", "deleted"),
    ]
    assert [w.name for w in store.current()] == ["chat"]
    assert [d.name for d in store.documents()] == ["a"]
    assert len(store.history("fraud")) == 1

    revived = apply(store, workload("fraud"), workload("chat"), documents=[document("Dataset", "d")])
    assert [(c.name, c.action, c.revision) for c in revived.created] == [("fraud", "created", 2)]
    assert [(d.name, d.action) for d in revived.documents] == [("a", "deleted"), ("d", "created")]
    assert [(w.name, w.number) for w in store.current()] == [("chat", 1), ("fraud", 2)]
    assert [r.spec for r in store.history("fraud")] == [workload("fraud").spec] * 2


def test_without_prune_undeclared_objects_stay(store: Store) -> None:
    apply(store, workload("fraud"), documents=[document("Cluster", "a")])
    result = apply(store, workload("chat"), prune=False)

    assert [(c.name, c.action) for c in result.workloads] == [("chat", "created")]
    assert [w.name for w in store.current()] == ["chat", "fraud"]
    assert [d.name for d in store.documents()] == ["a"]


def test_documents_are_overwritten_and_filtered_by_kind(store: Store, clock: FakeClock) -> None:
    apply(store, documents=[document("Cluster", "b"), document("Cluster", "a"), document("Dataset", "d")])
    clock.advance(5)
    result = apply(
        store, documents=[document("Cluster", "b", 2), document("Cluster", "a"), document("Dataset", "d")]
    )

    assert [(d.name, d.action) for d in result.documents] == [
        ("a", "unchanged"),
        ("b", "updated"),
        ("d", "unchanged"),
    ]
    clusters = store.documents("Cluster")
    assert [(d.name, d.spec["version"]) for d in clusters] == [("a", 1), ("b", 2)]
    assert clusters[1].updated_at == clock.now
    assert [d.kind for d in store.documents("Dataset")] == ["Dataset"]
    assert store.documents("Policy") == []


def test_names_declared_twice_are_rejected_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(UserError, match="declared more than once: fraud"):
        apply(store, workload("fraud", 1), workload("fraud", 2))
    with pytest.raises(UserError, match="Cluster/a"):
        apply(store, documents=[document("Cluster", "a"), document("Cluster", "a", 2)])
    assert store.current() == []
    assert store.documents() == []


class InjectedFailure(RuntimeError):
    """Raised by the test in the middle of a transaction."""


@contextmanager
def failing_on(store: Store, statement_prefix: str) -> Iterator[None]:
    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(statement_prefix):
            raise InjectedFailure(statement)

    event.listen(store.engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(store.engine, "before_cursor_execute", fail)


def test_apply_is_all_or_nothing(store: Store) -> None:
    apply(store, workload("fraud"), workload("old"), documents=[document("Cluster", "a")])
    before = (store.current(), store.documents(), store.history("fraud"))

    # Workloads are written first (new revisions, pointer moves, prune); the first document insert fails.
    with failing_on(store, "INSERT INTO DOCUMENTS"), pytest.raises(InjectedFailure):
        apply(store, workload("fraud", 2), workload("new"), documents=[document("Cluster", "b")])

    assert (store.current(), store.documents(), store.history("fraud")) == before
    with pytest.raises(NotFoundError):
        store.history("new")
    assert apply(store, workload("fraud", 2)).updated[0].revision == 2


def test_rollback_by_default_restores_the_last_different_content(store: Store) -> None:
    apply(store, workload("fraud", 1))
    apply(store, workload("fraud", 2))

    back = store.rollback("fraud", to=None, author="bob")
    assert (back.number, back.spec, back.placement, back.author) == (
        3,
        workload("fraud", 1).spec,
        workload("fraud", 1).placement,
        "bob",
    )
    assert back.message == "rollback to r1"
    assert store.current()[0].number == 3
    assert store.current()[0].content_hash == workload("fraud", 1).content_hash

    forward = store.rollback("fraud", to=None, author="bob")
    assert (forward.number, forward.spec["version"], forward.message) == (4, 2, "rollback to r2")
    assert [r.spec["version"] for r in store.history("fraud")] == [1, 2, 1, 2]


def test_rollback_to_an_explicit_revision(store: Store) -> None:
    for version in (1, 2, 3):
        apply(store, workload("fraud", version))

    restored = store.rollback("fraud", to=1, author="bob", message="bad canary")
    assert (restored.number, restored.spec["version"], restored.message) == (4, 1, "bad canary")
    with pytest.raises(ConflictError, match="same content"):
        store.rollback("fraud", to=1, author="bob")
    with pytest.raises(NotFoundError, match=r"no revision 9; its revisions are 1\.\.4"):
        store.rollback("fraud", to=9, author="bob")
    assert len(store.history("fraud")) == 4


def test_rollback_without_an_earlier_different_revision_conflicts(store: Store) -> None:
    apply(store, workload("fraud"))
    with pytest.raises(ConflictError, match="no earlier revision"):
        store.rollback("fraud", to=None, author="bob")
    with pytest.raises(NotFoundError, match="did you mean 'fraud'"):
        store.rollback("frud", to=None, author="bob")
    assert len(store.history("fraud")) == 1


def test_rollback_of_a_deleted_workload_needs_a_revision_and_revives_it(store: Store) -> None:
    apply(store, workload("fraud", 1))
    apply(store, workload("fraud", 2))
    apply(store)

    with pytest.raises(ConflictError, match="deleted"):
        store.rollback("fraud", to=None, author="bob")
    revived = store.rollback("fraud", to=2, author="bob")
    assert revived.number == 3
    assert [(w.name, w.number, w.spec["version"]) for w in store.current()] == [("fraud", 3, 2)]


def test_unknown_names_give_not_found_with_suggestions(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no workload has been applied yet"):
        store.history("fraud")
    apply(store, workload("fraud-detector"), workload("chat"))

    with pytest.raises(
        NotFoundError, match="unknown workload 'fraud-detecter'; did you mean 'fraud-detector'"
    ):
        store.history("fraud-detecter")
    with pytest.raises(NotFoundError, match="known workloads: chat, fraud-detector"):
        store.history("zzz")
    with pytest.raises(NotFoundError, match="did you mean"):
        store.revision("chatt", 1)
    with pytest.raises(NotFoundError, match="has no revision 2"):
        store.revision("chat", 2)


def test_a_workload_may_change_kind_with_a_new_revision(store: Store) -> None:
    apply(store, workload("x"))
    result = apply(store, workload("x", 2, kind="Job"))
    assert [(c.kind, c.action, c.revision) for c in result.workloads] == [("Job", "updated", 2)]
    assert store.current()[0].kind == "Job"
    assert [r.kind for r in store.history("x")] == ["Service", "Job"]
