"""Routes of /api/v1/jobs: status, logs, cancel and the preemption drill of managed training jobs.

The control plane puts its job controller on `app.state.jobs`; an app without one answers 503.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from polycloud.api.auth import Deployer, Viewer
from polycloud.errors import TransientError

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


def ops(request: Request) -> JobOps:
    found: JobOps | None = getattr(request.app.state, "jobs", None)
    if found is None:
        raise TransientError("this control plane runs no job controller")
    return found


@router.get("")
def status(request: Request, _: Viewer) -> dict[str, Any]:
    """`{"jobs": [...]}`, as `polycloud jobs status --json` prints it."""
    return ops(request).status()


@router.get("/{name}/logs")
def logs(name: str, request: Request, _: Viewer, tail: int = 100) -> dict[str, Any]:
    """The last `tail` lines the job wrote, over every attempt."""
    return {"lines": ops(request).log_lines(name, min(max(tail, 0), MAX_LOG_LINES))}


@router.post("/{name}/cancel")
def cancel(name: str, request: Request, _: Deployer) -> dict[str, str]:
    ops(request).cancel(name)
    return {"status": "cancelled"}


@router.post("/{name}/preempt")
def preempt(name: str, body: PreemptBody, request: Request, _: Deployer) -> dict[str, Any]:
    """Spot-preemption drill: SIGTERM the job now and SIGKILL it after the grace period."""
    cluster = ops(request).preempt(name, body.graceSeconds)
    return {"status": "preempted", "cluster": cluster, "graceSeconds": body.graceSeconds}
