"""/api/v1/auth/oidc: single sign-on with the company's OpenID Provider (POLYCLOUD_OIDC_ISSUER).

`GET /auth/oidc` tells `polycloud login` and the dashboard which provider and client to use (public).
The dashboard's "Sign in with <provider>" is the authorization code flow with PKCE, run by this server:
`/login` sends the browser to the provider with a fresh state, nonce and code challenge (kept in a
short-lived HttpOnly cookie only this path sees), and `/callback` checks the state, trades the code,
verifies the ID token (and its nonce), then opens today's dashboard session with its cookie rules
(HttpOnly, SameSite=Strict; changes need the CSRF header). Every sign-in is audited.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from polycloud import openid
from polycloud.api.sessions import set_session_cookie
from polycloud.errors import NotFoundError, UserError
from polycloud.services import oidc, sessions
from polycloud.services.context import ApiContext

PREFIX = "/api/v1/auth/oidc"
router = APIRouter(prefix=PREFIX, tags=["dashboard"])
FLOW_COOKIE = "polycloud_sso"
"""state.nonce.verifier of a sign-in under way. SameSite=Lax: the provider's redirect back is a
cross-site navigation, which a Strict cookie would not follow."""
FLOW_TTL_S = 600


class ProviderOut(BaseModel):
    issuer: str
    clientId: str
    scopes: str
    name: str = Field(description="How the dashboard names the provider: its host.")


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


def _verifier(request: Request) -> oidc.OidcVerifier:
    verifier = _ctx(request).oidc
    if verifier is None:
        raise NotFoundError("single sign-on is not configured (POLYCLOUD_OIDC_ISSUER)")
    return verifier


@router.get("", response_model=ProviderOut)
def provider(request: Request) -> dict[str, Any]:
    """Which OpenID Provider and client to sign in with (404 when single sign-on is off)."""
    config = _verifier(request).config
    name = urlsplit(config.issuer).hostname or config.issuer
    return {"issuer": config.issuer, "clientId": config.audience, "scopes": openid.SCOPES, "name": name}


@router.get("/login", status_code=303, response_class=RedirectResponse)
def login(request: Request) -> RedirectResponse:
    """Send the browser to the provider's sign-in page (authorization code flow with PKCE)."""
    verifier = _verifier(request)
    flow = openid.Pkce.new()
    url = openid.authorization_url(
        verifier.discovery(), verifier.config.audience, _callback_url(request), flow
    )
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        f"{flow.state}.{flow.nonce}.{flow.verifier}",
        max_age=FLOW_TTL_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=PREFIX,
    )
    return response


@router.get("/callback", status_code=303, response_class=RedirectResponse, name="oidc_callback")
def callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> RedirectResponse:
    """Finish a sign-in: check the state, trade the code, verify the ID token, open the session."""
    verifier = _verifier(request)
    if error is not None:
        raise UserError(f"the OpenID Provider refused the sign-in: {error[:200]}")
    flow = _flow(request, state)
    if not code:
        raise UserError("the OpenID Provider sent no authorization code")
    tokens = oidc.exchange_code(
        verifier.discovery(), verifier.config.client, code, _callback_url(request), flow.verifier
    )
    person = verifier.verify(str(tokens["id_token"]), nonce=flow.nonce)
    opened = sessions.sign_in(_ctx(request).store, person)
    request.state.caller = opened.who
    response = RedirectResponse("/#/map", status_code=303)
    response.delete_cookie(FLOW_COOKIE, path=PREFIX)
    set_session_cookie(response, opened.secret, request)
    return response


def _flow(request: Request, state: str | None) -> openid.Pkce:
    """The sign-in this browser started, if `state` is its own (else someone else's answer)."""
    parts = request.cookies.get(FLOW_COOKIE, "").split(".")
    if len(parts) != 3 or not state or not hmac.compare_digest(parts[0], state):
        raise UserError("this sign-in was not started by this browser, or took too long")
    return openid.Pkce(*parts)


def _callback_url(request: Request) -> str:
    return str(request.url_for("oidc_callback"))
