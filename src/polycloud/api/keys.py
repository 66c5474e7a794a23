"""/api/v1/keys: gateway inference keys. Create (deployer; the key is in this answer only), list, revoke.

A key belongs to one live Service; a token scoped to a project manages keys of that project's services
(`polycloud.services.keys`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from polycloud.api.auth import Deployer, Viewer
from polycloud.services import keys
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/keys", tags=["inference keys"])


class KeyBody(BaseModel):
    service: str = Field(min_length=1, max_length=253)
    name: str = Field(default="default", min_length=1, max_length=253, description="A label for humans.")
    rps: float = Field(default=50.0, gt=0, le=1e6, description="Sustained requests per second.")
    burst: int = Field(default=100, ge=1, le=10**7, description="Requests at once after a quiet spell.")
    monthlyQuota: int | None = Field(
        default=None, ge=1, le=10**15, description="Requests per calendar month (UTC); none by default."
    )
    tokensPerMinute: int | None = Field(
        default=None,
        ge=1,
        le=10**15,
        description="LLM tokens (prompt and completion) per sliding minute, at each gateway; "
        "none by default.",
    )
    monthlyTokens: int | None = Field(
        default=None, ge=1, le=10**15, description="LLM tokens per calendar month (UTC); none by default."
    )


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.post("")
def create_key(body: KeyBody, request: Request, who: Deployer) -> dict[str, Any]:
    """Create an inference key; `key` in the answer is the only copy (only its sha256 is stored)."""
    key, record = keys.create(
        _ctx(request).store,
        who,
        service=body.service,
        name=body.name,
        rps=body.rps,
        burst=body.burst,
        monthly_quota=body.monthlyQuota,
        tokens_per_minute=body.tokensPerMinute,
        monthly_tokens=body.monthlyTokens,
    )
    return {"key": key, **keys.key_json(record)}


@router.get("")
def list_keys(request: Request, who: Viewer, service: str | None = None) -> list[dict[str, Any]]:
    """Keys (revoked too) with this month's usage (requests and LLM tokens); never the keys themselves."""
    return [keys.key_json(r) for r in keys.visible(_ctx(request).store, who, service)]


@router.delete("/{key_id}")
def revoke_key(key_id: int, request: Request, who: Deployer) -> dict[str, Any]:
    """Revoke a key for good; gateways refuse it within a few seconds."""
    return keys.key_json(keys.revoke(_ctx(request).store, who, key_id))
