"""API tokens on an open session. A token's secret is shown once at creation; only its sha256 is kept."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polycloud.errors import NotFoundError, UserError
from polycloud.state.records import TOKEN_ROLES, TokenRecord, one_of
from polycloud.state.tables import TokenRow

TOKEN_PREFIX = "pc_"
"""Every token starts with this, so secret scanners and humans can recognise one."""


def hash_token(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session, *, name: str, role: str, project: str | None, expires_at: datetime | None, now: datetime
) -> tuple[str, TokenRecord]:
    """Insert a new token and return its secret with its record (see `Store.create_token`)."""
    if not name.strip():
        raise UserError("token name must not be empty")
    valid_role = one_of(role, TOKEN_ROLES, "token role")
    if expires_at is not None and expires_at.utcoffset() is None:
        raise UserError("token expiry must be timezone-aware")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        name=name,
        token_hash=hash_token(token),
        role=valid_role,
        project=project,
        created_at=now,
        expires_at=expires_at,
        revoked=False,
    )
    session.add(row)
    session.flush()
    return token, row.to_record()


def list_tokens(session: Session) -> list[TokenRecord]:
    """Every token, oldest first."""
    return [row.to_record() for row in session.scalars(select(TokenRow).order_by(TokenRow.id))]


def revoke_token(session: Session, token_id: int) -> None:
    """Mark token `token_id` revoked (NotFoundError when there is none)."""
    row = session.get(TokenRow, token_id)
    if row is None:
        raise NotFoundError(f"no token with id {token_id}")
    row.revoked = True


def authenticate(session: Session, token: str, now: datetime) -> TokenRecord | None:
    """The record of `token` when it exists, is not revoked and has not expired at `now`; else None."""
    if not token:
        return None
    query = select(TokenRow).where(TokenRow.token_hash == hash_token(token))
    row = session.scalars(query).one_or_none()
    if row is None or row.revoked:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return row.to_record()
