"""/api/v1/certificates: an admin's short-lived client certificate for debugging replicas, and rotating
the fleet CA (fleet-wide admins; `polycloud.services.certificates`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from polycloud.api.auth import Admin
from polycloud.services import certificates
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/certificates", tags=["certificates"])


def _issuer(request: Request) -> certificates.Issuer:
    found: certificates.Issuer | None = getattr(request.app.state, "credentials", None)
    if found is None:
        raise HTTPException(409, "mutual TLS is off in this fleet (POLYCLOUD_FLEET_MTLS=false)")
    return found


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.post("")
def issue(request: Request, who: Admin) -> dict[str, Any]:
    """A client certificate for the caller, valid for an hour: `certificate`, `key` (shown only now),
    `ca` (the trust bundle) and `expiresAt`."""
    return certificates.issue(_ctx(request).store, partial(_issuer, request), who)


@router.post("/rotate")
def rotate(request: Request, who: Admin) -> dict[str, Any]:
    """Make a new fleet CA; every certificate is renewed with it once it is trusted everywhere."""
    return certificates.rotate(_ctx(request).store, partial(_issuer, request), who)
