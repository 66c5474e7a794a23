"""Routes of /api/v1/lineage: the names that have lineage, and the graph around a service, job, dataset
or model digest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from polycloud.api.auth import Viewer
from polycloud.services import governance
from polycloud.services import lineage as lineage_graph
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/lineage")


@router.get("")
def names(request: Request, who: Viewer) -> dict[str, Any]:
    """`{"names": [{"name", "kind", "runs"}]}`: everything `GET /lineage/{name}` answers for (datasets,
    jobs, model digests, services, artifacts), scoped as it is; the dashboard's choices."""
    context: ApiContext = request.app.state.ctx
    own = governance.own_workloads(context.store, who)
    return {"names": lineage_graph.names(context.store, own)}


@router.get("/{name:path}")
def lineage(
    request: Request,
    name: str,
    who: Viewer,
    depth: Annotated[int, Query(ge=1, le=lineage_graph.MAX_DEPTH)] = lineage_graph.DEFAULT_DEPTH,
) -> dict[str, Any]:
    """`{"query", "depth", "roots", "nodes", "edges"}` as `polycloud lineage NAME --json` prints it; a
    project token sees only its own workloads' runs. 404 when nothing by that name has lineage."""
    context: ApiContext = request.app.state.ctx
    own = governance.own_workloads(context.store, who)
    return lineage_graph.lineage(context.store, name, depth, own)
