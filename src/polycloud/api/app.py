"""Routes of /api/v1. Each handler is a few lines over a service; sync handlers run in a thread pool."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from polycloud.api import errors
from polycloud.api.auth import Admin, Deployer, Viewer
from polycloud.api.context import ApiContext
from polycloud.drivers.base import Fault
from polycloud.services import inspecting

router = APIRouter(prefix="/api/v1")


class DocumentsBody(BaseModel):
    documents: list[dict[str, Any]] = Field(description="Normalised spec v1 documents.")


class ApplyBody(DocumentsBody):
    dryRun: bool = False
    message: str = ""


class RollbackBody(BaseModel):
    to: int | None = Field(default=None, ge=1, description="Revision number; default: the previous one.")


class FaultBody(BaseModel):
    cluster: str
    kind: Literal["kill", "down", "latency", "errors"]
    replicaId: str | None = None
    delayMs: float = Field(default=0.0, ge=0)
    errorRate: float = Field(default=0.0, ge=0, le=1)


def ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/status")
def status(request: Request, _: Viewer) -> dict[str, Any]:
    c = ctx(request)
    return inspecting.fleet_status(c.store, c.endpoints)


@router.post("/plan")
def plan(body: DocumentsBody, request: Request, _: Viewer) -> dict[str, Any]:
    return ctx(request).fleet.plan(body.documents).to_json()


@router.post("/apply")
def apply(body: ApplyBody, request: Request, who: Deployer) -> dict[str, Any]:
    preview = ctx(request).fleet.apply(
        body.documents, author=who.name, message=body.message, dry_run=body.dryRun
    )
    return preview.to_json()


@router.get("/workloads/{name}/history")
def history(name: str, request: Request, _: Viewer) -> list[dict[str, Any]]:
    return inspecting.history(ctx(request).store, name)


@router.post("/workloads/{name}/rollback")
def rollback(name: str, body: RollbackBody, request: Request, who: Deployer) -> dict[str, Any]:
    c = ctx(request)
    return inspecting.rollback(c.store, name, body.to, who.name, c.wake)


@router.get("/events")
def events(
    request: Request, _: Viewer, workload: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    return inspecting.events(ctx(request).store, workload, min(max(limit, 1), 1000))


@router.post("/faults")
def inject(body: FaultBody, request: Request, _: Deployer) -> dict[str, str]:
    fault = Fault(kind=body.kind, replica_id=body.replicaId, delay_ms=body.delayMs, error_rate=body.errorRate)
    ctx(request).inject_fault(body.cluster, fault)
    return {"status": "injected"}


@router.delete("/faults/{cluster}")
def clear(cluster: str, request: Request, _: Deployer) -> dict[str, str]:
    ctx(request).inject_fault(cluster, None)
    return {"status": "cleared"}


@router.post("/shutdown")
def shutdown(request: Request, _: Admin) -> dict[str, str]:
    ctx(request).shutdown()
    return {"status": "stopping"}


def create_app(context: ApiContext) -> FastAPI:
    """The control-plane API application for one running control plane."""
    app = FastAPI(
        title="polycloud control plane",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = context
    app.include_router(router)
    errors.install(app)
    return app
