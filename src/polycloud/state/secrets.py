"""Secrets on an open session: ciphertext in, ciphertext out. Encryption is `polycloud.secrets`' job.

A secret is keyed by (project, name); the fleet-wide scope is stored as project '' and shown as None.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polycloud.errors import NotFoundError, UserError
from polycloud.state.records import SealedSecret, SecretRecord
from polycloud.state.tables_governance import SecretRow

Rewrap = Callable[[SealedSecret], tuple[bytes, str]]
"""A sealed secret → (its data key wrapped anew, the id of the master key that wrapped it)."""


def _scope(project: str | None) -> str:
    return project or ""


def _record(row: SecretRow) -> SecretRecord:
    return SecretRecord(
        name=row.name,
        project=row.project or None,
        version=row.version,
        key_id=row.key_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _sealed(row: SecretRow) -> SealedSecret:
    return SealedSecret(
        name=row.name,
        project=row.project or None,
        wrapped_key=row.wrapped_key,
        nonce=row.nonce,
        ciphertext=row.ciphertext,
        key_id=row.key_id,
        version=row.version,
    )


def put_secret(session: Session, sealed: SealedSecret, now: datetime) -> SecretRecord:
    """Insert a secret, or replace the value of an existing one (its version goes up by one)."""
    if not sealed.name.strip():
        raise UserError("secret name must not be empty")
    row = session.get(SecretRow, (_scope(sealed.project), sealed.name))
    if row is None:
        row = SecretRow(project=_scope(sealed.project), name=sealed.name, version=1, created_at=now)
        session.add(row)
    else:
        row.version += 1
    row.wrapped_key, row.nonce, row.ciphertext = sealed.wrapped_key, sealed.nonce, sealed.ciphertext
    row.key_id = sealed.key_id
    row.updated_at = now
    session.flush()
    return _record(row)


def list_secrets(session: Session) -> list[SecretRecord]:
    """Every user secret's metadata, by (project, name): polycloud's own, in projects starting with `_`
    (the fleet CA's sealed keys), are never listed."""
    query = select(SecretRow).order_by(SecretRow.project, SecretRow.name)
    return [_record(row) for row in session.scalars(query) if not row.project.startswith("_")]


def sealed_secrets(session: Session) -> list[SealedSecret]:
    """Every secret's ciphertext, by (project, name)."""
    query = select(SecretRow).order_by(SecretRow.project, SecretRow.name)
    return [_sealed(row) for row in session.scalars(query)]


def delete_secret(session: Session, name: str, project: str | None) -> None:
    """Delete one secret (NotFoundError when there is none)."""
    row = session.get(SecretRow, (_scope(project), name))
    if row is None:
        where = f" in project {project!r}" if project else ""
        raise NotFoundError(f"no secret {name!r}{where}")
    session.delete(row)


def rewrap_all(session: Session, rewrap: Rewrap, now: datetime) -> int:
    """Re-wrap every data key with `rewrap`; the caller's transaction makes it all or nothing."""
    rows = list(session.scalars(select(SecretRow).with_for_update()))
    for row in rows:
        row.wrapped_key, row.key_id = rewrap(_sealed(row))
        row.updated_at = now
    return len(rows)
