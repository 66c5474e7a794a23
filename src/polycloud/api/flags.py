"""/api/v1/flags: feature flags outside an apply. List and history (viewer); the kill switch and
rollbacks (fleet-wide deployer, audited as "flag.disable", "flag.enable", "flag.rollback").

Flags are shared by every project, like clusters and policies, so a project's token may read them but
not change them (`polycloud.services.flags`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from polycloud.api.auth import Deployer, Viewer
from polycloud.services import audit, flags, governance
from polycloud.services.context import ApiContext
from polycloud.services.flag_shares import DEFAULT_WINDOW_S, MAX_WINDOW_S, MIN_WINDOW_S

router = APIRouter(prefix="/api/v1/flags", tags=["feature flags"])


class FlagStateBody(BaseModel):
    state: Literal["ENABLED", "DISABLED"] = Field(description="DISABLED is the kill switch.")


class FlagRollbackBody(BaseModel):
    to: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Version; default: the previous one."
    )


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("")
def list_flags(
    request: Request,
    who: Viewer,
    window: Annotated[
        int,
        Query(
            ge=MIN_WINDOW_S,
            le=MAX_WINDOW_S,
            description="Seconds of evaluations to count (whole minutes: from the minute this long ago on).",
        ),
    ] = DEFAULT_WINDOW_S,
) -> list[dict[str, Any]]:
    """Every live flag with its state, default variant and version, its evaluations per variant over the
    window (counts and shares, from every gateway), and the services it routes."""
    return flags.listing(_ctx(request).store, window, who.project)


@router.get("/{name}/history")
def flag_history(name: str, request: Request, who: Viewer) -> list[dict[str, Any]]:
    """Every version of a flag, oldest first."""
    return flags.history(_ctx(request).store, name)


@router.post("/{name}/state")
def set_state(name: str, body: FlagStateBody, request: Request, who: Deployer) -> dict[str, Any]:
    """Enable or disable a flag at once, as a new version."""
    store = _ctx(request).store
    governance.require_fleet_wide(who, "change feature flags (shared by every project)")
    action = "flag.disable" if body.state == "DISABLED" else "flag.enable"
    with audit.audited(store, audit.actor_of(who), action, name) as entry:
        version = flags.set_state(store, name, body.state, who.name)
        entry.revision = int(version["version"])
    return version


@router.post("/{name}/rollback")
def rollback(name: str, body: FlagRollbackBody, request: Request, who: Deployer) -> dict[str, Any]:
    """Make an earlier version of a flag current again, as a new version."""
    store = _ctx(request).store
    governance.require_fleet_wide(who, "change feature flags (shared by every project)")
    with audit.audited(store, audit.actor_of(who), "flag.rollback", name, to=body.to) as entry:
        version = flags.rollback(store, name, body.to, who.name)
        entry.revision = int(version["version"])
    return version
