"""Routes of /api/v1/cost and /api/v1/advice: showback, chargeback, budgets and savings (viewer role).

A project token sees only its own workloads' costs and advice.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from polycloud.api.auth import Viewer
from polycloud.services import costing
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1")

By = Query(default="service", max_length=253, description="service, cluster, provider or a label key.")
Since = Query(default=None, max_length=64, description='Window start: "7d", "12h", or an ISO date.')


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("/cost")
def cost(request: Request, who: Viewer, by: str = By, since: str | None = Since) -> dict[str, Any]:
    """`{"rows": [{"key", "computeUSD", "egressUSD", "totalUSD"}], "totalUSD"}` as `polycloud cost --json`;
    with `"tokens"` (tokens served and cost per 1M tokens) when LLM services served tokens."""
    return costing.cost_report(_ctx(request).store, by, since, who.project)


@router.get("/cost/export")
def export(
    request: Request,
    who: Viewer,
    label: str = Query(default="team", max_length=253, description="The label to charge back by."),
    since: str | None = Since,
) -> dict[str, Any]:
    """Chargeback: one row per (label value, workload, cluster), with the period covered."""
    return costing.cost_export(_ctx(request).store, label, since, who.project)


@router.get("/cost/budgets")
def budgets(request: Request, who: Viewer) -> dict[str, Any]:
    """Every Policy budget this month: spend, month-end forecast, % used and alert level."""
    return costing.budgets(_ctx(request).store, who.project)


@router.get("/advice")
def advice(request: Request, who: Viewer) -> dict[str, Any]:
    """Savings with dollar figures and the command that applies each."""
    c = _ctx(request)
    return costing.advice(c.store, c.fleet.catalog, who.project)
