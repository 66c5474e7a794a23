"""Desired-state operations on an open session: apply, rollback and revision lookups.

Each function runs inside the caller's transaction (the `Store` holds the "desired" lock around them) and
keeps these invariants:

- revision numbers of a workload are 1, 2, 3... with no gaps, and rows in `revisions` are never changed;
- `workloads.revision` is always the workload's highest revision number;
- a deleted workload keeps its history; bringing it back appends a new revision.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from polycloud.errors import ConflictError, NotFoundError, UserError
from polycloud.state import flag_revisions
from polycloud.state.records import (
    WORKLOAD_KINDS,
    ApplyResult,
    ChangeAction,
    DocumentChange,
    DocumentInput,
    RevisionRecord,
    WorkloadChange,
    WorkloadInput,
    WorkloadState,
    stored,
)
from polycloud.state.tables import DocumentRow, RevisionRow, WorkloadRow

_SHOWN_NAMES = 10


@dataclass(frozen=True)
class Authorship:
    """Who writes new revisions, why, and when."""

    author: str
    message: str
    now: datetime


def _current_revision() -> ColumnElement[bool]:
    return and_(RevisionRow.workload == WorkloadRow.name, RevisionRow.number == WorkloadRow.revision)


def current_workloads(session: Session) -> list[WorkloadState]:
    """Every non-deleted workload with its current revision, sorted by name."""
    query = (
        select(WorkloadRow, RevisionRow)
        .join(RevisionRow, _current_revision())
        .where(WorkloadRow.deleted.is_(False))
        .order_by(WorkloadRow.name)
    )
    rows = session.execute(query).all()
    return [pointer.to_state(revision) for pointer, revision in rows]


def find_workload(session: Session, name: str) -> WorkloadRow:
    """The pointer row of workload `name`, deleted or not.

    Raises:
        NotFoundError: No workload was ever applied under that name; the message suggests close names.
    """
    row = session.get(WorkloadRow, name)
    if row is not None:
        return row
    known = sorted(session.scalars(select(WorkloadRow.name)))
    close = difflib.get_close_matches(name, known, n=3)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif known:
        more = ", ..." if len(known) > _SHOWN_NAMES else ""
        hint = "known workloads: " + ", ".join(known[:_SHOWN_NAMES]) + more
    else:
        hint = "no workload has been applied yet"
    raise NotFoundError(f"unknown workload {name!r}; {hint}")


def revisions_of(session: Session, name: str) -> list[RevisionRow]:
    """All revisions of workload `name`, oldest first (NotFoundError when there is no such workload)."""
    find_workload(session, name)
    return list(
        session.scalars(select(RevisionRow).where(RevisionRow.workload == name).order_by(RevisionRow.number))
    )


def get_revision(session: Session, name: str, number: int) -> RevisionRow:
    """Revision `number` of workload `name`.

    Raises:
        NotFoundError: The workload or that revision of it does not exist.
    """
    pointer = find_workload(session, name)
    row = session.scalars(
        select(RevisionRow).where(RevisionRow.workload == name, RevisionRow.number == number)
    ).one_or_none()
    if row is None:
        raise NotFoundError(
            f"workload {name!r} has no revision {number}; its revisions are 1..{pointer.revision}"
        )
    return row


def apply_changes(
    session: Session,
    workloads: list[WorkloadInput],
    documents: list[DocumentInput],
    authorship: Authorship,
    *,
    prune: bool,
) -> ApplyResult:
    """Make the declared workloads and documents the desired state (see `Store.apply`)."""
    _require_unique((w.name for w in workloads), "workload")
    _require_unique((f"{d.kind}/{d.name}" for d in documents), "document")
    workload_changes = _apply_workloads(session, workloads, authorship, prune=prune)
    document_changes = _apply_documents(session, documents, authorship, prune=prune)
    session.flush()
    return ApplyResult(workloads=workload_changes, documents=document_changes)


def _require_unique(keys: Iterable[str], what: str) -> None:
    duplicates = sorted(key for key, count in Counter(keys).items() if count > 1)
    if duplicates:
        raise UserError(f"{what} declared more than once: {', '.join(duplicates)}")


def _apply_workloads(
    session: Session, workloads: list[WorkloadInput], authorship: Authorship, *, prune: bool
) -> list[WorkloadChange]:
    existing = {row.name: row for row in session.scalars(select(WorkloadRow))}
    current_hashes = select(RevisionRow.workload, RevisionRow.content_hash).join(
        WorkloadRow, _current_revision()
    )
    hashes = {workload: digest for workload, digest in session.execute(current_hashes)}
    changes: list[WorkloadChange] = []
    for workload in sorted(workloads, key=lambda w: w.name):
        row = existing.get(workload.name)
        action: ChangeAction
        if row is None or row.deleted:
            action = "created"
        elif hashes.get(workload.name) != workload.content_hash:
            action = "updated"
        else:
            changes.append(WorkloadChange(workload.name, workload.kind, "unchanged", row.revision))
            continue
        revision = _append_revision(session, row, workload, authorship)
        changes.append(WorkloadChange(workload.name, workload.kind, action, revision.number))
    if prune:
        declared = {w.name for w in workloads}
        for name, row in sorted(existing.items()):
            if name not in declared and not row.deleted:
                row.deleted = True
                row.updated_at = authorship.now
                kind = stored(row.kind, WORKLOAD_KINDS, "workload kind")
                changes.append(WorkloadChange(name, kind, "deleted", row.revision))
    return sorted(changes, key=lambda c: c.name)


def _append_revision(
    session: Session, pointer: WorkloadRow | None, workload: WorkloadInput, authorship: Authorship
) -> RevisionRow:
    revision = RevisionRow(
        workload=workload.name,
        kind=workload.kind,
        number=1 if pointer is None else pointer.revision + 1,
        spec=workload.spec,
        content_hash=workload.content_hash,
        placement=workload.placement,
        project=workload.project,
        author=authorship.author,
        message=authorship.message,
        created_at=authorship.now,
    )
    session.add(revision)
    session.flush()  # the pointer's foreign key needs the revision row first
    if pointer is None:
        session.add(
            WorkloadRow(
                name=workload.name,
                kind=workload.kind,
                revision=revision.number,
                deleted=False,
                updated_at=authorship.now,
            )
        )
    else:
        pointer.kind = workload.kind
        pointer.revision = revision.number
        pointer.deleted = False
        pointer.updated_at = authorship.now
    return revision


def _apply_documents(
    session: Session, documents: list[DocumentInput], authorship: Authorship, *, prune: bool
) -> list[DocumentChange]:
    """Overwrite changed documents; a FeatureFlag's change is also appended to its versions."""
    now = authorship.now
    existing = {(row.kind, row.name): row for row in session.scalars(select(DocumentRow))}
    changes: list[DocumentChange] = []
    changed: list[DocumentRow] = []
    for document in documents:
        row = existing.get((document.kind, document.name))
        action: ChangeAction
        if row is None:
            row = DocumentRow(
                kind=document.kind,
                name=document.name,
                spec=document.spec,
                content_hash=document.content_hash,
                updated_at=now,
                deleted=False,
            )
            session.add(row)
            action = "created"
        elif row.deleted or row.content_hash != document.content_hash:
            action = "created" if row.deleted else "updated"
            row.spec = document.spec
            row.content_hash = document.content_hash
            row.deleted = False
            row.updated_at = now
        else:
            action = "unchanged"
        changes.append(DocumentChange(document.kind, document.name, action))
        if action != "unchanged":
            changed.append(row)
    if prune:
        declared = {(d.kind, d.name) for d in documents}
        for key, row in existing.items():
            if key not in declared and not row.deleted:
                row.deleted = True
                row.updated_at = now
                changes.append(DocumentChange(row.kind, row.name, "deleted"))
                changed.append(row)
    for row in changed:
        if row.kind == flag_revisions.KIND:
            flag_revisions.record(session, row, author=authorship.author, message=authorship.message, now=now)
    return sorted(changes, key=lambda c: (c.kind, c.name))


def rollback(session: Session, name: str, to: int | None, authorship: Authorship) -> RevisionRecord:
    """Append a revision of `name` copying revision `to` (see `Store.rollback`)."""
    pointer = find_workload(session, name)
    history = {row.number: row for row in revisions_of(session, name)}
    current = history[pointer.revision]
    if to is None:
        if pointer.deleted:
            raise ConflictError(f"workload {name!r} is deleted; name the revision to restore")
        earlier = [
            row
            for number, row in sorted(history.items(), reverse=True)
            if number < current.number and row.content_hash != current.content_hash
        ]
        if not earlier:
            raise ConflictError(
                f"workload {name!r} has no earlier revision with different content to roll back to"
            )
        target = earlier[0]
    else:
        target = get_revision(session, name, to)
        if not pointer.deleted and target.content_hash == current.content_hash:
            raise ConflictError(
                f"revision {to} of {name!r} has the same content as the current revision {current.number}"
            )
    restored = WorkloadInput(
        name=name,
        kind=stored(target.kind, WORKLOAD_KINDS, "workload kind"),
        spec=target.spec,
        content_hash=target.content_hash,
        placement=target.placement,
        project=target.project,
    )
    message = authorship.message or f"rollback to r{target.number}"
    return _append_revision(
        session, pointer, restored, Authorship(authorship.author, message, authorship.now)
    ).to_record()
