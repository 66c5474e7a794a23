"""/api/v1/session: how the dashboard logs in.

`polycloud dashboard` asks for a login code (`POST /api/v1/session/codes`, any valid token) and opens
`<api>/#login=<code>`; the page trades the code, once, for a session cookie (`POST /api/v1/session`)
and removes it from the address bar. The login form trades a typed token the same way. The session
stands for the token that made it: same role, same project, revoked with it. Logins are audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, model_validator

from polycloud.api.auth import SESSION_COOKIE, Viewer
from polycloud.services import audit
from polycloud.services.governance import UnauthenticatedError
from polycloud.state import Store, TokenRecord

router = APIRouter(prefix="/api/v1/session", tags=["dashboard"])

CODE_TTL = timedelta(seconds=120)
"""Long enough to open a browser; short enough that a code in a terminal's scroll-back is dead."""
SESSION_TTL = timedelta(hours=12)


class CodeOut(BaseModel):
    code: str = Field(description="Single use; append to the dashboard's address as #login=CODE.")
    expiresInS: int


class LoginBody(BaseModel):
    code: str | None = Field(default=None, max_length=200, description="A code from POST /session/codes.")
    token: str | None = Field(default=None, max_length=200, description="An API token (the login form).")

    @model_validator(mode="after")
    def _one(self) -> LoginBody:
        if (self.code is None) == (self.token is None):
            raise ValueError("give exactly one of code and token")
        return self


class WhoOut(BaseModel):
    name: str
    role: str
    project: str | None
    tokenId: int


def _store(request: Request) -> Store:
    store: Store = request.app.state.ctx.store
    return store


def who_json(who: TokenRecord) -> dict[str, Any]:
    return {"name": who.name, "role": who.role, "project": who.project, "tokenId": who.id}


@router.post("/codes", status_code=201, response_model=CodeOut)
def create_code(request: Request, who: Viewer) -> dict[str, Any]:
    """A single-use login code for the dashboard, standing for the calling token."""
    code = _store(request).issue_login_code(who.id, CODE_TTL)
    return {"code": code, "expiresInS": int(CODE_TTL.total_seconds())}


@router.post("", response_model=WhoOut)
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Trade a login code or a token for a session cookie (HttpOnly, SameSite=Strict)."""
    store = _store(request)
    if body.code is not None:
        redeemed = store.redeem_login_code(body.code.strip(), SESSION_TTL)
        if redeemed is None:
            raise UnauthenticatedError("this login code is unknown, used or expired: run polycloud dashboard")
        secret, who = redeemed
    else:
        found = store.authenticate((body.token or "").strip())
        if found is None:
            raise UnauthenticatedError("unknown, revoked or expired token")
        who, secret = found, store.open_web_session(found.id, SESSION_TTL)
    request.state.caller = who
    audit.record(
        store,
        actor=audit.actor_of(who),
        action="dashboard.login",
        target="dashboard",
        detail={"with": "code" if body.code is not None else "token"},
    )
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return who_json(who)


@router.get("", response_model=WhoOut)
def whoami(who: Viewer) -> dict[str, Any]:
    """Who the caller is: the dashboard shows it and offers only what the role allows."""
    return who_json(who)


@router.delete("", status_code=204)
def logout(request: Request, who: Viewer) -> Response:
    """End the browser session (a bearer caller has none; nothing changes)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        _store(request).end_web_session(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
