"""/api/v1/session: how the dashboard logs in.

`polycloud dashboard` asks for a login code (`POST /api/v1/session/codes`, any valid token) and opens
`<api>/#login=<code>`; the page trades the code, once, for a session cookie (`POST /api/v1/session`)
and removes it from the address bar. The login form trades a typed token the same way. The session
stands for the token that made it: same role, same project, revoked with it. Logins are audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, model_validator

from polycloud.api.auth import SESSION_COOKIE, Viewer
from polycloud.services import sessions
from polycloud.services.context import ApiContext, TokenRecord
from polycloud.services.sessions import CODE_TTL, SESSION_TTL

router = APIRouter(prefix="/api/v1/session", tags=["dashboard"])


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


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


def set_session_cookie(response: Response, secret: str, request: Request) -> None:
    """The session cookie every sign-in sets: HttpOnly, SameSite=Strict, Secure over https."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def who_json(who: TokenRecord) -> dict[str, Any]:
    return {"name": who.name, "role": who.role, "project": who.project, "tokenId": who.id}


@router.post("/codes", status_code=201, response_model=CodeOut)
def create_code(request: Request, who: Viewer) -> dict[str, Any]:
    """A single-use login code for the dashboard, standing for the calling token."""
    code = sessions.issue_code(_ctx(request).store, who)
    return {"code": code, "expiresInS": int(CODE_TTL.total_seconds())}


@router.post("", response_model=WhoOut)
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Trade a login code or a token for a session cookie (HttpOnly, SameSite=Strict)."""
    opened = sessions.login(_ctx(request).store, code=body.code, token=body.token)
    request.state.caller = opened.who
    set_session_cookie(response, opened.secret, request)
    return who_json(opened.who)


@router.get("", response_model=WhoOut)
def whoami(who: Viewer) -> dict[str, Any]:
    """Who the caller is: the dashboard shows it and offers only what the role allows."""
    return who_json(who)


@router.delete("", status_code=204)
def logout(request: Request, who: Viewer) -> Response:
    """End the browser session (a bearer caller has none; nothing changes)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        sessions.logout(_ctx(request).store, cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
