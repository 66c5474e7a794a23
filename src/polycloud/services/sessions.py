"""Who is calling: API tokens, and the dashboard's browser sessions that stand for them.

`polycloud dashboard` gets a single-use login code for its token (`issue_code`) and the page trades it
once for a session (`login`); the login form trades a typed token the same way. A session stands for the
token that made it: same role, same project, revoked with it. Logins are audited ("dashboard.login").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from polycloud.errors import UserError
from polycloud.services import audit, identity
from polycloud.services.governance import UnauthenticatedError
from polycloud.state import TokenRecord
from polycloud.state.repositories_services import SessionRepository

CODE_TTL = timedelta(seconds=120)
"""Long enough to open a browser; short enough that a code in a terminal's scroll-back is dead."""
SESSION_TTL = timedelta(hours=12)


@dataclass(frozen=True)
class Login:
    """A session just opened: its secret (the cookie's value, never stored) and the caller it stands for."""

    secret: str
    who: TokenRecord


def authenticate(
    store: SessionRepository, *, token: str | None = None, session: str | None = None
) -> TokenRecord:
    """The caller a bearer `token`, or else a browser `session` secret, stands for.

    Raises:
        UnauthenticatedError: It is unknown, revoked or expired (or its token is).
    """
    if token is not None:
        found = store.authenticate(token)
    else:
        found = store.authenticate_web_session(session or "") or _person(store, session or "")
    if found is None:
        raise UnauthenticatedError("unknown, revoked or expired token or session")
    return found


def _person(store: SessionRepository, session: str) -> identity.PersonRecord | None:
    """The person a browser session of the OpenID Provider's sign-in stands for, with today's grants."""
    found = store.authenticate_person_session(session) if session else None
    if found is None:
        return None
    who = identity.Identity(
        subject=str(found["subject"]),
        issuer=str(found["issuer"]),
        username=str(found["username"]),
        groups=tuple(str(g) for g in found["groups"]),
        expires=int(found["expires"]),
    )
    return identity.person(who, identity.grants_of(store, who))


def sign_in(store: SessionRepository, who: identity.Identity) -> Login:
    """Open a browser session for a person the OpenID Provider vouched for (the dashboard's "Sign in
    with ..."), valid for `SESSION_TTL`; audited with the subject, issuer and grants."""
    until = int((datetime.now(UTC) + SESSION_TTL).timestamp())
    person = {
        "subject": who.subject,
        "issuer": who.issuer,
        "username": who.username,
        "groups": list(who.groups),
        "expires": until,
    }
    secret = store.open_person_session(person, SESSION_TTL)
    record = identity.person(replace(who, expires=until), identity.grants_of(store, who))
    identity.record_sign_in(store, record, "dashboard")
    return Login(secret, record)


def issue_code(store: SessionRepository, who: TokenRecord) -> str:
    """A single-use login code standing for `who`, valid for `CODE_TTL`.

    Raises:
        UserError: `who` is a person signed in with the OpenID Provider (no token to stand for).
    """
    if isinstance(who, identity.PersonRecord):
        raise UserError("a login code stands for an API token: sign in on the dashboard with the provider")
    return store.issue_login_code(who.id, CODE_TTL)


def login(store: SessionRepository, *, code: str | None = None, token: str | None = None) -> Login:
    """Trade a login `code` (once), or else a typed `token`, for a session valid for `SESSION_TTL`.

    Raises:
        UnauthenticatedError: The code is unknown, used or expired; or the token is not valid.
    """
    if code is not None:
        redeemed = store.redeem_login_code(code.strip(), SESSION_TTL)
        if redeemed is None:
            raise UnauthenticatedError("this login code is unknown, used or expired: run polycloud dashboard")
        secret, who = redeemed
    else:
        found = store.authenticate((token or "").strip())
        if found is None:
            raise UnauthenticatedError("unknown, revoked or expired token")
        who, secret = found, store.open_web_session(found.id, SESSION_TTL)
    audit.record(
        store,
        actor=audit.actor_of(who),
        action="dashboard.login",
        target="dashboard",
        detail={"with": "code" if code is not None else "token"},
    )
    return Login(secret, who)


def logout(store: SessionRepository, session: str) -> None:
    """End the browser session `session` (nothing happens when it is not open)."""
    store.end_web_session(session)
