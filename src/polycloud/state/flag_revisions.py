"""Versions of feature flags on an open session: recorded by every apply that changes a flag, and by
`put`, which sets one flag outside an apply (the kill switch, a rollback).

A FeatureFlag lives in `documents` like any declared object (that is what gateways read); each change
also appends a `flag_revisions` row with the whole document, so its history can be listed and any
version restored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from polycloud.errors import NotFoundError
from polycloud.state.tables import DocumentRow
from polycloud.state.tables_flags import FlagRevisionRow

KIND = "FeatureFlag"


@dataclass(frozen=True)
class FlagRevisionRecord:
    """One version of a flag."""

    name: str
    number: int
    spec: dict[str, Any]
    """The whole document (apiVersion, kind, metadata, spec)."""
    content_hash: str
    deleted: bool
    author: str
    message: str
    created_at: datetime


def _record(row: FlagRevisionRow) -> FlagRevisionRecord:
    return FlagRevisionRecord(
        row.name,
        row.number,
        row.spec,
        row.content_hash,
        row.deleted,
        row.author,
        row.message,
        row.created_at,
    )


def record(
    session: Session,
    row: DocumentRow,
    *,
    author: str,
    message: str,
    now: datetime,
) -> FlagRevisionRecord:
    """Append the version `row` (a FeatureFlag's document row, just changed) now holds."""
    last = session.scalar(select(func.max(FlagRevisionRow.number)).where(FlagRevisionRow.name == row.name))
    version = FlagRevisionRow(
        name=row.name,
        number=(last or 0) + 1,
        spec=row.spec,
        content_hash=row.content_hash,
        deleted=row.deleted,
        author=author,
        message=message,
        created_at=now,
    )
    session.add(version)
    return _record(version)


def history(session: Session, name: str) -> list[FlagRevisionRecord]:
    """Every version of flag `name`, oldest first.

    Raises:
        NotFoundError: No flag of that name was ever applied.
    """
    rows = session.scalars(
        select(FlagRevisionRow).where(FlagRevisionRow.name == name).order_by(FlagRevisionRow.number)
    ).all()
    if not rows:
        raise NotFoundError(f"no FeatureFlag named {name!r} was ever applied")
    return [_record(r) for r in rows]


def put(
    session: Session,
    name: str,
    document: dict[str, Any],
    content_hash: str,
    *,
    author: str,
    message: str,
    now: datetime,
) -> FlagRevisionRecord:
    """Make `document` flag `name`'s current content, as a new version.

    Raises:
        NotFoundError: No flag of that name was ever applied.
    """
    row = session.get(DocumentRow, (KIND, name))
    if row is None:
        raise NotFoundError(f"no FeatureFlag named {name!r} was ever applied")
    row.spec, row.content_hash, row.deleted, row.updated_at = document, content_hash, False, now
    return record(session, row, author=author, message=message, now=now)
