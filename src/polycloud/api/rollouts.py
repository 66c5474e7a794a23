"""Routes of /api/v1/rollouts: canary rollouts, and an operator's pause, resume and abort."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from polycloud.api.auth import Deployer, Viewer
from polycloud.services import audit, governance, rollouts
from polycloud.services.context import ApiContext
from polycloud.services.rollouts import Action

router = APIRouter(prefix="/api/v1")


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("/rollouts")
def list_rollouts(
    request: Request, who: Viewer, service: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    store = _ctx(request).store
    if service is not None:
        governance.check_workload(store, who, service)
    found = rollouts.rollouts(store, service, min(max(limit, 1), 200))
    own = governance.own_workloads(store, who)
    return found if own is None else [r for r in found if r["service"] in own]


@router.get("/rollouts/{service}")
def get_rollout(service: str, request: Request, who: Viewer) -> dict[str, Any]:
    store = _ctx(request).store
    governance.check_workload(store, who, service)
    return rollouts.rollout(store, service)


@router.post("/rollouts/{service}/{action}")
def control_rollout(service: str, action: Action, request: Request, who: Deployer) -> dict[str, Any]:
    c = _ctx(request)
    governance.check_workload(c.store, who, service)
    with audit.audited(c.store, audit.actor_of(who), f"rollout.{action}", service) as entry:
        record = rollouts.control(c.store, service, action, who.name, c.wake)
        entry.detail["state"] = record["state"]
    return record
