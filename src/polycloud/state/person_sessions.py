"""Dashboard sessions of people signed in with the OpenID Provider (`PersonSessionRow`)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from polycloud.state.tables_governance import PersonSessionRow
from polycloud.state.tokens import hash_token

PREFIX = "pcp_"


def open_session(session: Session, person: dict[str, Any], ttl: timedelta, now: datetime) -> str:
    """A new session for `person` (plain JSON), expiring after `ttl`; its secret, shown only now."""
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(
        PersonSessionRow(
            secret_hash=hash_token(secret), person=dict(person), created_at=now, expires_at=now + ttl
        )
    )
    session.execute(delete(PersonSessionRow).where(PersonSessionRow.expires_at <= now))
    return secret


def authenticate(session: Session, secret: str, now: datetime) -> dict[str, Any] | None:
    """The person a valid session stands for; None when unknown or expired."""
    if not secret.startswith(PREFIX):
        return None
    query = select(PersonSessionRow).where(PersonSessionRow.secret_hash == hash_token(secret))
    row = session.scalars(query).one_or_none()
    return dict(row.person) if row is not None and row.expires_at > now else None


def end(session: Session, secret: str) -> None:
    """Forget a session (signing out); an unknown one changes nothing."""
    session.execute(delete(PersonSessionRow).where(PersonSessionRow.secret_hash == hash_token(secret)))
