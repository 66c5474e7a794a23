"""/api/v1/audit: read and verify the audit hash chain; fleet-wide admins only (it spans every project)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from polycloud.api.auth import Admin
from polycloud.services import audit
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class EntryOut(BaseModel):
    seq: int
    time: str
    actor: str
    action: str
    target: str
    outcome: Literal["ok", "denied", "failed"]
    revision: int | None
    detail: dict[str, Any]
    hash: str
    prevHash: str


class BreakOut(BaseModel):
    seq: int
    kind: Literal["edited", "deleted", "inserted", "reordered"]
    reason: str


class VerdictOut(BaseModel):
    intact: bool
    entries: int
    headSeq: int
    headHash: str
    broken: BreakOut | None


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("", response_model=list[EntryOut])
def audit_log(
    request: Request,
    who: Admin,
    limit: int = Query(default=100, ge=1, le=10_000),
    before: int | None = Query(default=None, ge=1, le=2**62, description="Only entries below this seq."),
) -> list[dict[str, Any]]:
    """The newest entries, newest first."""
    return [audit.entry_json(e) for e in audit.trail(_ctx(request).store, who, limit=limit, before=before)]


@router.get("/verify", response_model=VerdictOut)
def verify(request: Request, who: Admin) -> dict[str, Any]:
    """Walk the whole chain; `broken` names the first edited, deleted, inserted or reordered entry."""
    return audit.verdict_json(audit.verify(_ctx(request).store, who))
