"""Routes of /api/v1/jobs: status, logs, cancel and the preemption drill of managed training jobs.

The control plane puts its job controller on `app.state.jobs`; an app without one answers 503.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from polycloud.api.auth import Deployer, Viewer
from polycloud.errors import TransientError
from polycloud.services import governance
from polycloud.services.context import ApiContext, TokenRecord

router = APIRouter(prefix="/api/v1/jobs")
DEFAULT_GRACE_S = 5.0
MAX_LOG_LINES = 10_000


class JobOps(Protocol):
    """What the routes need of the job controller."""

    def status(self) -> dict[str, Any]: ...
    def cancel(self, name: str) -> None: ...
    def preempt(self, name: str, grace_s: float) -> str: ...
    def log_lines(self, name: str, tail: int) -> list[str]: ...


class PreemptBody(BaseModel):
    graceSeconds: float = Field(
        default=DEFAULT_GRACE_S, ge=0, le=3600, description="Seconds between SIGTERM and SIGKILL."
    )


def ops(request: Request, who: TokenRecord, name: str | None = None) -> JobOps:
    """The job controller, once `who` may act on job `name` (a project token: only its own jobs)."""
    if name is not None:
        governance.check_workload(context(request).store, who, name)
    found: JobOps | None = getattr(request.app.state, "jobs", None)
    if found is None:
        raise TransientError("this control plane runs no job controller")
    return found


def context(request: Request) -> ApiContext:
    found: ApiContext = request.app.state.ctx
    return found


@router.get("")
def status(request: Request, who: Viewer) -> dict[str, Any]:
    """`{"jobs": [...]}`, as `polycloud jobs status --json` prints it (a project token: its own jobs)."""
    data = ops(request, who).status()
    own = governance.own_workloads(context(request).store, who)
    return data if own is None else {"jobs": [j for j in data["jobs"] if j["name"] in own]}


@router.get("/{name}/logs")
def logs(name: str, request: Request, who: Viewer, tail: int = 100) -> dict[str, Any]:
    """The last `tail` lines the job wrote, over every attempt."""
    return {"lines": ops(request, who, name).log_lines(name, min(max(tail, 0), MAX_LOG_LINES))}


@router.post("/{name}/cancel")
def cancel(name: str, request: Request, who: Deployer) -> dict[str, str]:
    ops(request, who, name).cancel(name)
    return {"status": "cancelled"}


@router.post("/{name}/preempt")
def preempt(name: str, body: PreemptBody, request: Request, who: Deployer) -> dict[str, Any]:
    """Spot-preemption drill: SIGTERM the job now and SIGKILL it after the grace period."""
    cluster = ops(request, who, name).preempt(name, body.graceSeconds)
    return {"status": "preempted", "cluster": cluster, "graceSeconds": body.graceSeconds}
