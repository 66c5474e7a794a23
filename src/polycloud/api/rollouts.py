"""Routes of /api/v1/rollouts: canary rollouts, and an operator's pause, resume and abort."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from polycloud.api.auth import Deployer, Viewer
from polycloud.api.context import ApiContext
from polycloud.services import rollouts
from polycloud.services.rollouts import Action

router = APIRouter(prefix="/api/v1")


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("/rollouts")
def list_rollouts(
    request: Request, _: Viewer, service: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    return rollouts.rollouts(_ctx(request).store, service, min(max(limit, 1), 200))


@router.get("/rollouts/{service}")
def get_rollout(service: str, request: Request, _: Viewer) -> dict[str, Any]:
    return rollouts.rollout(_ctx(request).store, service)


@router.post("/rollouts/{service}/{action}")
def control_rollout(service: str, action: Action, request: Request, who: Deployer) -> dict[str, Any]:
    c = _ctx(request)
    return rollouts.control(c.store, service, action, who.name, c.wake)
