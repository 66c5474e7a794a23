"""Bearer-token authentication, role checks (viewer < deployer < admin), and the audit of every refusal.

`Viewer`, `Deployer` and `Admin` are the dependencies routes declare; project scoping is checked by the
routes through `polycloud.services.governance`. Every 401 and 403 answer, whichever route or check gave
it, is appended to the audit trail by `install`'s middleware, in this (the control-plane) process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from polycloud.errors import PolycloudError
from polycloud.services import audit, identity, oidc, sessions
from polycloud.services.context import ApiContext, TokenRecord
from polycloud.services.governance import RANK, ForbiddenError, UnauthenticatedError, require_role

__all__ = [
    "CSRF_HEADER",
    "RANK",
    "SESSION_COOKIE",
    "Admin",
    "Deployer",
    "Viewer",
    "caller",
    "install",
    "require",
]

log = logging.getLogger(__name__)
REFUSED = {401: "auth.failed", 403: "auth.forbidden"}
"""The audit action recorded for each refusing status."""


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


SESSION_COOKIE = "polycloud_session"
"""The dashboard's browser session (HttpOnly, SameSite=Strict); see `polycloud.api.sessions`."""
CSRF_HEADER = "x-polycloud-dashboard"
"""A change made with the session cookie must carry this header, which no other site's page can set
without a CORS preflight this API never grants."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROJECT_HEADER = "x-polycloud-project"
"""Which project a person bound in several acts in, for one request."""


def caller(request: Request) -> TokenRecord:
    """The caller, from the bearer token (polycloud's own, or an ID token of the configured OpenID
    Provider) or else the dashboard's session cookie; 401 when neither is valid (missing, unknown,
    revoked, expired, or an ID token that fails a check)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    context = _ctx(request)
    if header:
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("malformed Authorization header (Authorization: Bearer <token>)")
        if context.oidc is not None and oidc.looks_like_jwt(token.strip()):
            record: TokenRecord = identity.authenticate(context.store, context.oidc, token.strip())
        else:
            record = sessions.authenticate(context.store, token=token.strip())
    elif cookie := request.cookies.get(SESSION_COOKIE):
        if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != "1":
            raise UnauthenticatedError(
                f"a change made with the session cookie needs the {CSRF_HEADER} header"
            )
        record = sessions.authenticate(context.store, session=cookie)
    else:
        raise UnauthenticatedError("missing bearer token (Authorization: Bearer <token>)")
    request.state.caller = record
    return record


def require(role: str) -> Callable[[Request, TokenRecord], TokenRecord]:
    """A dependency that lets the call through only for `role` or above. A person signed in with the
    OpenID Provider acts with what their RoleBindings give (see `polycloud.services.identity`)."""

    def check(request: Request, who: Annotated[TokenRecord, Depends(caller)]) -> TokenRecord:
        if isinstance(who, identity.PersonRecord):
            who = identity.acting_as(who, role, request.headers.get(PROJECT_HEADER) or None)
            request.state.caller = who
        require_role(who, role)
        return who

    return check


Viewer = Annotated[TokenRecord, Depends(require("viewer"))]
Deployer = Annotated[TokenRecord, Depends(require("deployer"))]
Admin = Annotated[TokenRecord, Depends(require("admin"))]


def install(app: FastAPI) -> None:
    """Answer refusals with 401/403 and a reason, and append each one to the audit trail."""

    @app.exception_handler(UnauthenticatedError)
    async def _unauthenticated(request: Request, e: UnauthenticatedError) -> JSONResponse:
        request.state.refusal = str(e)
        return JSONResponse({"error": str(e)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ForbiddenError)
    async def _forbidden(request: Request, e: ForbiddenError) -> JSONResponse:
        request.state.refusal = str(e)
        return JSONResponse({"error": str(e)}, status_code=403)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        # Every error of this API has the same shape, {"error": reason}, whoever raised it.
        request.state.refusal = str(e.detail)
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=e.headers)

    @app.middleware("http")
    async def _audit_refusals(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if response.status_code in REFUSED:
            await run_in_threadpool(_record_refusal, request, response.status_code)
        return response


def _record_refusal(request: Request, status: int) -> None:
    who: TokenRecord | None = getattr(request.state, "caller", None)
    detail: dict[str, object] = {"reason": str(getattr(request.state, "refusal", ""))[: audit.MAX_ERROR]}
    if request.client is not None:
        detail["client"] = request.client.host
    if who is not None:
        detail |= {"role": who.role, "project": who.project}
    if isinstance(who, identity.PersonRecord):
        detail |= {"subject": who.subject, "issuer": who.issuer, "groups": list(who.groups)}
    elif (claimed := _bearer_jwt(request)) is not None:
        detail |= oidc.claimed(claimed)
    try:
        audit.record(
            _ctx(request).store,
            actor=audit.actor_of(who),
            action=REFUSED[status],
            target=f"{request.method} {request.url.path}"[:1000],
            outcome="denied",
            detail=detail,
        )
    except PolycloudError as e:  # the refusal stands; losing its entry must not turn it into a 500
        log.error("could not record a refused request in the audit trail: %s", e)


def _bearer_jwt(request: Request) -> str | None:
    """The bearer token when it is a JWT (a refused one is audited with what it claims to be)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and oidc.looks_like_jwt(token.strip()) else None
