"""Bearer-token authentication and role checks (viewer < deployer < admin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from polycloud.state import TokenRecord

RANK = {"viewer": 0, "deployer": 1, "admin": 2}


def caller(request: Request) -> TokenRecord:
    """The token record of the caller; 401 when the token is missing, unknown, revoked or expired."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)")
    record: TokenRecord | None = request.app.state.ctx.store.authenticate(token.strip())
    if record is None:
        raise HTTPException(401, "unknown, revoked or expired token")
    return record


def require(role: str) -> Callable[[TokenRecord], TokenRecord]:
    """A dependency that lets the call through only for `role` or above."""

    def check(who: Annotated[TokenRecord, Depends(caller)]) -> TokenRecord:
        if RANK[who.role] < RANK[role]:
            raise HTTPException(403, f"role {who.role} may not do this; {role} or above is needed")
        return who

    return check


Viewer = Annotated[TokenRecord, Depends(require("viewer"))]
Deployer = Annotated[TokenRecord, Depends(require("deployer"))]
Admin = Annotated[TokenRecord, Depends(require("admin"))]
