"""Dashboard login codes and browser sessions on an open session (see `WebSessionRow`).

A code or session is valid while it has not expired and its token is still valid; trading a code for a
session deletes the code in the same transaction, so a code works once even between two servers.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from polycloud.errors import NotFoundError
from polycloud.state.records import TokenRecord
from polycloud.state.tables import TokenRow
from polycloud.state.tables_governance import WebSessionRow
from polycloud.state.tokens import hash_token

CODE_PREFIX = "pcl_"
SESSION_PREFIX = "pcs_"


def _valid_token(row: TokenRow | None, now: datetime) -> bool:
    return row is not None and not row.revoked and (row.expires_at is None or row.expires_at > now)


def issue(session: Session, token_id: int, kind: str, ttl: timedelta, now: datetime) -> str:
    """A new code or session for token `token_id`, expiring after `ttl` (never after the token)."""
    token = session.get(TokenRow, token_id)
    if token is None or not _valid_token(token, now):
        raise NotFoundError(f"no valid token with id {token_id}")
    expires = now + ttl
    if token.expires_at is not None:
        expires = min(expires, token.expires_at)
    secret = (CODE_PREFIX if kind == "code" else SESSION_PREFIX) + secrets.token_urlsafe(32)
    session.add(
        WebSessionRow(
            token_id=token_id, kind=kind, secret_hash=hash_token(secret), created_at=now, expires_at=expires
        )
    )
    # Expired codes and sessions are of no use to anyone: sweep them while we are writing anyway.
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
    return secret


def _find(session: Session, secret: str, kind: str, now: datetime) -> tuple[WebSessionRow, TokenRow] | None:
    query = select(WebSessionRow).where(
        WebSessionRow.secret_hash == hash_token(secret), WebSessionRow.kind == kind
    )
    row = session.scalars(query).one_or_none()
    if row is None or row.expires_at <= now:
        return None
    token = session.get(TokenRow, row.token_id)
    if token is None or not _valid_token(token, now):
        return None
    return row, token


def redeem(session: Session, code: str, ttl: timedelta, now: datetime) -> tuple[str, TokenRecord] | None:
    """Trade a login code for a new session (the code is deleted); None when it is not valid."""
    found = _find(session, code, "code", now)
    if found is None:
        return None
    row, token = found
    session.delete(row)
    return issue(session, token.id, "session", ttl, now), token.to_record()


def authenticate(session: Session, secret: str, now: datetime) -> TokenRecord | None:
    """The token record a valid browser session stands for; None otherwise."""
    found = _find(session, secret, "session", now) if secret else None
    return found[1].to_record() if found is not None else None


def end(session: Session, secret: str) -> None:
    """Forget a browser session (logging out); an unknown one changes nothing."""
    session.execute(delete(WebSessionRow).where(WebSessionRow.secret_hash == hash_token(secret)))
