"""Workload identity: the OpenID discovery document and JWK Set of polycloud's workload issuer, served
without authentication (the clouds fetch them to verify replicas' tokens), and rotating its signing key
(`POST /api/v1/identity/rotate`, fleet-wide admins; `polycloud.services.workload`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from polycloud.api.auth import Admin
from polycloud.pki.workload import DISCOVERY_PATH, JWKS_PATH
from polycloud.services import workload
from polycloud.services.context import ApiContext

public = APIRouter(tags=["identity"])
router = APIRouter(prefix="/api/v1/identity", tags=["identity"])
CACHE = "public, max-age=60"
"""Verifiers may cache both documents a minute; a new key is published long before it signs."""


def _keys(request: Request) -> workload.Keys:
    found: workload.Keys | None = getattr(request.app.state, "workload", None)
    if found is None:
        raise HTTPException(404, "this server issues no workload identities")
    return found


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


NOT_ISSUING: dict[int | str, dict[str, Any]] = {
    404: {"description": "This server issues no workload identities."}
}


@public.get(DISCOVERY_PATH, responses=NOT_ISSUING)
def discovery(request: Request) -> JSONResponse:
    """OpenID Provider metadata of the workload issuer (public)."""
    return JSONResponse(_keys(request).discovery(), headers={"Cache-Control": CACHE})


@public.get(JWKS_PATH, responses=NOT_ISSUING)
def jwks(request: Request) -> JSONResponse:
    """The keys that verify workload identity tokens (public)."""
    return JSONResponse(_keys(request).jwks(), headers={"Cache-Control": CACHE})


@router.post("/rotate")
def rotate(request: Request, who: Admin) -> dict[str, Any]:
    """Make a new signing key: in the JWKS at once, signing after POLYCLOUD_WORKLOAD_KEY_PUBLISH_S; the
    old key stays published until every token it signed has expired."""
    return workload.rotate(_ctx(request).store, partial(_keys, request), who)
