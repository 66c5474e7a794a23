"""API token use cases: create (the secret is returned once), list and revoke, within the caller's rights.

An admin of a project manages only that project's tokens; fleet-wide tokens are managed by fleet-wide
admins. The last lasting fleet-wide admin token (no other valid for another day) cannot be revoked,
so that nobody locks the fleet out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from polycloud.errors import ConflictError, NotFoundError, UserError
from polycloud.services.governance import RANK, ForbiddenError
from polycloud.state import TokenRecord
from polycloud.state.repositories_services import TokenRepository

PROJECT = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A project is a label value of `metadata.labels.project`: a DNS-1123 label."""
DURATION = re.compile(r"(\d{1,6})([mhdw])")
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_LIFETIME = timedelta(days=3660)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,62}")


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """`now` plus a duration such as "90m", "12h", "30d" or "8w"; None (or "never") for no expiry."""
    if text is None or text.strip() in ("", "never"):
        return None
    found = DURATION.fullmatch(text.strip())
    if found is None:
        raise UserError(f"expiry must be a duration such as 90m, 12h, 30d or 8w (or never), not {text!r}")
    lifetime = int(found.group(1)) * UNITS[found.group(2)]
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise UserError(f"expiry must be between 1m and {MAX_LIFETIME.days} days, not {text!r}")
    return now + lifetime


def create(
    store: TokenRepository,
    caller: TokenRecord,
    *,
    role: str,
    project: str | None,
    expires: str | None,
    name: str | None,
) -> tuple[str, TokenRecord]:
    """Create a token with at most the caller's rights; returns its secret (shown once) and record."""
    if role not in RANK:
        raise UserError(f"role must be one of {', '.join(RANK)}, not {role!r}")
    if RANK[role] > RANK[caller.role]:
        raise ForbiddenError(f"a {caller.role} token may not create a {role} token")
    if caller.project is not None:
        project = project or caller.project
        if project != caller.project:
            raise ForbiddenError(f"a token of project {caller.project} may only create tokens of it")
    if project is not None and not PROJECT.fullmatch(project):
        raise UserError(f"project must be a DNS-1123 label (a-z, 0-9, -; at most 63), not {project!r}")
    label = name or (f"{role}-{project}" if project else role)
    if not NAME.fullmatch(label):
        raise UserError(f"token name must be 1-63 letters, digits, . _ @ or -, not {label!r}")
    expires_at = parse_expiry(expires, datetime.now(UTC))
    return store.create_token(name=label, role=role, project=project, expires_at=expires_at)


def visible(store: TokenRepository, caller: TokenRecord) -> list[TokenRecord]:
    """The tokens `caller` may manage, oldest first."""
    return [t for t in store.tokens() if caller.project is None or t.project == caller.project]


def revoke(store: TokenRepository, caller: TokenRecord, token_id: int) -> TokenRecord:
    """Revoke token `token_id` for good; returns its record as it was."""
    target = next((t for t in store.tokens() if t.id == token_id), None)
    if target is None:
        raise NotFoundError(f"no token with id {token_id}")
    if caller.project is not None and target.project != caller.project:
        raise ForbiddenError(f"token {token_id} is not a token of project {caller.project}")
    now = datetime.now(UTC)
    if _fleet_admin(target, now) and not any(
        _fleet_admin(t, now + LASTING) for t in store.tokens() if t.id != token_id
    ):
        raise ConflictError(
            f"token {token_id} is the last lasting fleet-wide admin token (no other is valid for another "
            f"{LASTING.days} day); create one before revoking it"
        )
    store.revoke_token(token_id)
    return target


LASTING = timedelta(days=1)
"""How long another admin token must stay valid for this one to be revoked: a token that expires in a
minute would leave the fleet without an administrator a minute later."""


def _fleet_admin(token: TokenRecord, at: datetime) -> bool:
    usable = not token.revoked and (token.expires_at is None or token.expires_at > at)
    return usable and token.role == "admin" and token.project is None


def token_json(token: TokenRecord, now: datetime | None = None) -> dict[str, Any]:
    """A token as the API lists it: never its secret nor its hash."""
    moment = now or datetime.now(UTC)
    expired = token.expires_at is not None and token.expires_at <= moment
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "project": token.project,
        "createdAt": token.created_at.isoformat(),
        "expiresAt": token.expires_at.isoformat() if token.expires_at else None,
        "state": "revoked" if token.revoked else "expired" if expired else "active",
    }
