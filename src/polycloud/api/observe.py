"""Observability routes: the fleet's `GET /metrics` (outside /api/v1, unauthenticated like most
Prometheus scrape targets), `GET /api/v1/slo` and `GET /api/v1/incidents`."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from polycloud.api.auth import Viewer
from polycloud.obs.federation import federate, fleet_sources
from polycloud.services import observing
from polycloud.services.context import ApiContext

router = APIRouter()


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Every metric of the fleet in the Prometheus text format (see `polycloud.obs.federation`)."""
    c = _ctx(request)
    registries: list[CollectorRegistry] = list(getattr(request.app.state, "registries", []))
    sources, clusters = await run_in_threadpool(fleet_sources, c.store, c.endpoints.gateway_url)
    credentials = getattr(request.app.state, "credentials", None)
    tls = credentials.client_context() if credentials is not None else None
    body = await federate(registries, sources, clusters, tls)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/slo")
def slo(request: Request, who: Viewer) -> dict[str, Any]:
    """Each service's SLO: availability, error budget left, burn rates and alerts, per cluster and
    overall (a project token sees its project's services only)."""
    return observing.slo(_ctx(request).store, who)


@router.get("/api/v1/incidents")
def incidents(
    request: Request, who: Viewer, state: Literal["open", "resolved"] | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Incidents, newest first, each with its timeline of events (a project token sees those of its
    project's services)."""
    return observing.incidents(_ctx(request).store, who, state, limit)


@router.get("/api/v1/anomalies")
def anomalies(request: Request, who: Viewer, minutes: int = 60, limit: int = 100) -> list[dict[str, Any]]:
    """Anomalies of the last `minutes`, newest first (a project token sees its project's services')."""
    return observing.anomalies(_ctx(request).store, who, minutes, limit)
