"""/api/v1/dashboard: what the web dashboard reads beyond the other routes — the fleet overview, its live
stream (server-sent events), the recent series behind the charts, a service's plan explanation — and
the timed outage drill it can start. Every route takes the same tokens (or the session cookie) and
roles as the rest of the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from polycloud.api.auth import Deployer, Viewer
from polycloud.api.feed import CLOSED, Feed, Message
from polycloud.errors import NotFoundError, PolycloudError, UserError
from polycloud.services import audit, faults, governance, overview
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])
log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
DRILLS_LOCK = threading.Lock()
DRILL_FAULTS: dict[str, faults.FaultRequest] = {
    "outage": faults.FaultRequest("down"),
    "brownout": faults.FaultRequest("latency", delay_ms=300.0),
    "errors": faults.FaultRequest("errors", error_rate=0.5),
    "blackhole": faults.FaultRequest("freeze"),
}


class DrillBody(BaseModel):
    cluster: str = Field(max_length=63)
    kind: Literal["outage", "brownout", "errors", "blackhole"] = "outage"
    seconds: float = Field(default=20.0, ge=2, le=600, description="The fault is cleared after this long.")


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


def _feed(request: Request) -> Feed:
    feed: Feed = request.app.state.feed
    return feed


def make_feed(context: ApiContext) -> Feed:
    store, catalog = context.store, context.fleet.catalog
    return Feed(lambda: overview.overview(store, catalog), lambda after: overview.events_after(store, after))


@router.get("/overview")
def fleet_overview(request: Request, who: Viewer) -> dict[str, Any]:
    """Clusters (location, health, load), services (placement, replicas, rollout, load; for LLM
    services tokens per second and today's tokens), jobs and the traffic and data flows between them;
    the same document the stream pushes."""
    fresh = _feed(request).latest(who, max_age_s=1.0)  # a page opening its stream gets it anyway
    if fresh is not None:
        return fresh
    c = _ctx(request)
    return overview.visible(overview.overview(c.store, c.fleet.catalog), who)


@router.get("/series")
def series(request: Request, who: Viewer) -> dict[str, Any]:
    """Requests per second, 5xx share, p50 and p99 (time to first token for LLM services) and LLM
    tokens per second (prompt, completion) per cluster and per service over the last minutes, one
    sample per second while a dashboard is open (every 5 s otherwise)."""
    return _feed(request).series(who)


@router.get("/stream", response_class=StreamingResponse)
async def stream(request: Request, who: Viewer) -> StreamingResponse:
    """Server-sent events: `overview` (the overview, every second) and `event` (each new event)."""
    feed = _feed(request)
    sub = feed.subscribe(who)
    first = feed.latest(who)

    async def messages() -> AsyncIterator[str]:
        try:
            yield "retry: 1000\n\n"
            if first is not None:
                yield _sse(("overview", first))
            while True:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if message is CLOSED:
                    return
                yield _sse(message)
        finally:
            feed.unsubscribe(sub)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)


def _sse(message: Message) -> str:
    name, data = message
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/services/{name}/explain")
def explain(name: str, request: Request, who: Viewer) -> dict[str, Any]:
    """The planner's placement of `name` for the fleet as declared now, with its explanation."""
    c = _ctx(request)
    governance.check_workload(c.store, who, name)
    return planned(c, name)


def planned(c: ApiContext, name: str) -> dict[str, Any]:
    documents = [d.spec for d in c.store.documents()] + [w.spec for w in c.store.current()]
    plan = c.fleet.plan(documents).to_json()
    for placement in plan["placements"]:
        if placement["workload"] == name:
            return dict(placement)
    for infeasible in plan["infeasible"]:
        if infeasible["workload"] == name:
            return {**infeasible, "assignments": [], "explanation": "; ".join(infeasible["reasons"])}
    raise NotFoundError(f"no workload named {name!r}")


@router.post("/drills", status_code=202)
def drill(body: DrillBody, request: Request, who: Deployer) -> dict[str, Any]:
    """Inject a fault into a cluster now and clear it after `seconds`; watch it on the map."""
    c = _ctx(request)
    governance.require_fleet_wide(who, "run drills on shared clusters")
    drills: dict[str, threading.Timer] = request.app.state.drills
    with DRILLS_LOCK:  # two pages starting a drill on one cluster at once: one of them is refused
        if (body.cluster in drills and drills[body.cluster].is_alive()) or faults.active(
            c.store, body.cluster
        ):
            raise UserError(f"a drill is already running on cluster {body.cluster!r}")
        actor = audit.actor_of(who)
        # The fault carries its own end: if this server dies before its timer fires, the leader ends it.
        ends = replace(DRILL_FAULTS[body.kind], until=faults.ends_in(body.seconds))
        with audit.audited(c.store, actor, "drill.start", body.cluster, kind=body.kind, seconds=body.seconds):
            faults.inject(c.store, body.cluster, ends, c.wake)
        _event(
            c, "DrillStarted", body.cluster, f"{body.kind} drill by {who.name}: fault for {body.seconds:g} s"
        )
        timer = threading.Timer(body.seconds, _end_drill, (c, body.cluster, actor))
        timer.daemon = True
        drills[body.cluster] = timer
        timer.start()
    return {"status": "running", "cluster": body.cluster, "kind": body.kind, "seconds": body.seconds}


def _end_drill(c: ApiContext, cluster: str, actor: str) -> None:
    try:
        with audit.audited(c.store, actor, "drill.end", cluster):
            faults.clear(c.store, cluster, c.wake)
        _event(c, "DrillEnded", cluster, "drill over: fault cleared")
    except PolycloudError as e:  # audited as failed; clear it with DELETE /api/v1/faults/CLUSTER
        log.error("could not end the drill on cluster %s: %s", cluster, e)


def _event(c: ApiContext, reason: str, cluster: str, message: str) -> None:
    """Drills are on the incident timeline like the failovers they cause."""
    faults.drill_event(c.store, reason, cluster, message)


def install(app: Any, context: ApiContext) -> None:
    """Give `app` its feed and drill registry (the routes above need them)."""
    app.state.feed = make_feed(context)
    app.state.drills = {}
