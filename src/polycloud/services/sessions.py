"""Who is calling: API tokens, and the dashboard's browser sessions that stand for them.

`polycloud dashboard` gets a single-use login code for its token (`issue_code`) and the page trades it
once for a session (`login`); the login form trades a typed token the same way. A session stands for the
token that made it: same role, same project, revoked with it. Logins are audited ("dashboard.login").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from polycloud.services import audit
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
    found = store.authenticate(token) if token is not None else store.authenticate_web_session(session or "")
    if found is None:
        raise UnauthenticatedError("unknown, revoked or expired token or session")
    return found


def issue_code(store: SessionRepository, who: TokenRecord) -> str:
    """A single-use login code standing for `who`, valid for `CODE_TTL`."""
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
