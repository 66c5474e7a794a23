"""Routes of /api/v1. Each handler is a few lines over a service; sync handlers run in a thread pool."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field, StrictBool

from polycloud.api import audit as audit_routes
from polycloud.api import (
    auth,
    certs,
    dashboard,
    errors,
    flags,
    hosts,
    jobs,
    keys,
    limits,
    lineage,
    methods,
    observe,
    openapi,
    rollouts,
    secrets,
    sessions,
    spending,
    sso,
    tokens,
    web,
)
from polycloud.api import cost as cost_routes
from polycloud.api import workload as workload_routes
from polycloud.api.auth import Admin, Deployer, Viewer
from polycloud.policy import PolicyViolationError
from polycloud.services import audit, faults, governance, inspecting
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1")


class DocumentsBody(BaseModel):
    documents: list[dict[str, Any]] = Field(description="Normalised spec v1 documents.")


class ApplyBody(DocumentsBody):
    dryRun: StrictBool = Field(default=False, description="Only preview; `true` or `false`, nothing else.")
    message: str = ""


class RollbackBody(BaseModel):
    to: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Revision number; default: the previous one."
    )


class FaultBody(BaseModel):
    cluster: str
    kind: Literal["kill", "down", "latency", "errors", "freeze"]
    replicaId: str | None = None
    delayMs: float = Field(default=0.0, ge=0, le=600_000)
    errorRate: float = Field(default=0.0, ge=0, le=1)
    forSeconds: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="Clear the fault by itself after this long (by any leader).",
    )


def ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/status")
def status(request: Request, who: Viewer) -> dict[str, Any]:
    c = ctx(request)
    return governance.visible_status(c.store, who, inspecting.fleet_status(c.store, c.endpoints))


@router.post("/plan")
def plan(body: DocumentsBody, request: Request, who: Viewer) -> dict[str, Any]:
    governance.check_declared(body.documents, who)
    return ctx(request).fleet.plan(body.documents).to_json()


@router.post("/apply")
def apply(body: ApplyBody, request: Request, who: Deployer) -> dict[str, Any]:
    fleet, scope = ctx(request).fleet, who.project or "fleet"
    if body.dryRun:
        try:
            return governance.apply_as(fleet, who, body.documents, message=body.message, dry_run=True)
        except PolicyViolationError as e:  # a policy decision is audited even when only previewed
            detail = {"dryRun": True, "violations": audit.violations(e)}
            audit.record(
                fleet.store,
                actor=audit.actor_of(who),
                action="apply",
                target=scope,
                outcome="denied",
                detail=detail,
            )
            raise
    with audit.audited(fleet.store, audit.actor_of(who), "apply", scope, message=body.message) as entry:
        preview = governance.apply_as(fleet, who, body.documents, message=body.message, dry_run=False)
        changed = {c["workload"]: c for c in preview["changes"] if c["action"] != "="}
        entry.detail["changes"] = {name: f"{c['action']}r{c['revision']}" for name, c in changed.items()}
        entry.revision = next(iter(changed.values()))["revision"] if len(changed) == 1 else None
        if preview.get("documents"):
            entry.detail["documents"] = preview["documents"]
    return preview


@router.get("/workloads/{name}/history")
def history(name: str, request: Request, who: Viewer) -> list[dict[str, Any]]:
    store = ctx(request).store
    governance.check_workload(store, who, name)
    return inspecting.history(store, name)


@router.post("/workloads/{name}/rollback")
def rollback(name: str, body: RollbackBody, request: Request, who: Deployer) -> dict[str, Any]:
    c = ctx(request)
    with audit.audited(c.store, audit.actor_of(who), "rollback", name, to=body.to) as entry:
        governance.check_rollback(c.store, who, name, body.to)
        record = inspecting.rollback(c.store, name, body.to, who.name, c.wake)
        entry.revision = int(record["number"])
    return record


@router.get("/events")
def events(
    request: Request, who: Viewer, workload: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    return governance.visible_events(ctx(request).store, who, workload, min(max(limit, 1), 1000))


@router.post("/faults")
def inject(body: FaultBody, request: Request, who: Deployer) -> dict[str, str]:
    c = ctx(request)
    governance.require_fleet_wide(who, "inject faults into shared clusters")
    fault = faults.FaultRequest(
        body.kind, body.replicaId, body.delayMs, body.errorRate, faults.ends_in(body.forSeconds)
    )
    with audit.audited(c.store, audit.actor_of(who), "fault.inject", body.cluster, kind=body.kind):
        faults.inject(c.store, body.cluster, fault, c.wake)
    return {"status": "injected"}


@router.delete("/faults/{cluster}")
def clear(cluster: str, request: Request, who: Deployer) -> dict[str, str]:
    c = ctx(request)
    governance.require_fleet_wide(who, "clear faults of shared clusters")
    with audit.audited(c.store, audit.actor_of(who), "fault.clear", cluster):
        faults.clear(c.store, cluster, c.wake)
    return {"status": "cleared"}


@router.post("/shutdown")
def shutdown(request: Request, who: Admin) -> dict[str, str]:
    c = ctx(request)
    governance.require_fleet_wide(who, "stop the control plane")
    with audit.audited(c.store, audit.actor_of(who), "shutdown", "control-plane"):
        c.shutdown()
    return {"status": "stopping"}


def create_app(context: ApiContext, *, allowed_hosts: Collection[str] = hosts.LOOPBACK_HOSTS) -> FastAPI:
    """The control-plane API application for one running control plane, answering requests addressed
    to `allowed_hosts` only (`hosts.allowed_hosts` makes the list a server needs)."""
    app = FastAPI(
        title="polycloud control plane",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = context
    routers = [
        router,
        tokens.router,
        audit_routes.router,
        rollouts.router,
        secrets.router,
        keys.router,
        jobs.router,
        observe.router,
        cost_routes.router,
        sessions.router,
        dashboard.router,
        spending.router,
        certs.router,
        sso.router,
        flags.router,
        workload_routes.public,
        workload_routes.router,
        lineage.router,
    ]
    for each in routers:
        app.include_router(each)
    dashboard.install(app, context)
    limits.install(app)
    errors.install(app)
    auth.install(app)
    openapi.document_errors(app)
    web.mount(app)  # last: it answers every path no route above took
    table = methods.route_table([*app.router.routes, *(r for each in routers for r in each.routes)])
    app.add_middleware(methods.MethodGuard, table=table)
    app.add_middleware(hosts.HostGuard, hosts=allowed_hosts)  # outermost: before anything reads the request
    return app
