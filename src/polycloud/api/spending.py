"""/api/v1/dashboard/spend: spend per hour behind the dashboard's cost chart (viewer role).

A project token sees only its own workloads' costs, as with /api/v1/cost.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from polycloud.api.auth import Viewer
from polycloud.services import spending
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


class SpendOut(BaseModel):
    by: str
    hours: list[str] = Field(description="ISO starts of the hours with any cost, ascending.")
    series: dict[str, list[float]] = Field(description="Per key: compute + egress USD of each hour.")
    egress: dict[str, list[float]] = Field(description="Per key: the egress part of `series`.")
    totalUSD: float


@router.get("/spend", response_model=SpendOut)
def spend(
    request: Request,
    who: Viewer,
    by: str = Query(
        default="service", max_length=253, description="service, cluster, provider or a label key."
    ),
    since: str | None = Query(
        default="7d", max_length=64, description='Window start: "7d", "12h", or an ISO date.'
    ),
) -> dict[str, Any]:
    """Spend per hour per key of `by` (grouped as /api/v1/cost groups), aligned on `hours`: every hour of
    the window that has any cost. Keys run dearest first."""
    context: ApiContext = request.app.state.ctx
    return spending.spend(context.store, by, since, who.project)
