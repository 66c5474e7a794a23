"""/api/v1/tokens: create (the secret is in this one answer only), list and revoke API tokens; admin only.

An admin token of a project manages that project's tokens; fleet-wide tokens need a fleet-wide admin.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from polycloud import names
from polycloud.api.auth import Admin
from polycloud.services import audit, tokens
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenBody(BaseModel):
    role: Literal["viewer", "deployer", "admin"]
    project: str | None = Field(
        default=None,
        pattern=names.DNS_LABEL_PATTERN,
        description=f"Limit the token to one project ({names.PROJECT_RULE}); none: fleet-wide.",
    )
    expires: str | None = Field(
        default=None, max_length=16, description='A lifetime such as "90m", "12h", "30d", "8w"; none: never.'
    )
    name: str | None = Field(default=None, max_length=63, description="A label for humans.")


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    project: str | None
    createdAt: str
    expiresAt: str | None
    state: Literal["active", "revoked", "expired"]


class CreatedToken(TokenOut):
    token: str = Field(description="The bearer token. Shown here once; only its sha256 is kept.")


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.post("", status_code=201, response_model=CreatedToken)
def create_token(body: TokenBody, request: Request, who: Admin) -> dict[str, Any]:
    store = _ctx(request).store
    actor = audit.actor_of(who)
    with audit.audited(store, actor, "token.create", role=body.role, expires=body.expires) as entry:
        secret, record = tokens.create(
            store, who, role=body.role, project=body.project, expires=body.expires, name=body.name
        )
        entry.target = str(record.id)
        entry.detail["project"] = record.project
    return {**tokens.token_json(record), "token": secret}


@router.get("", response_model=list[TokenOut])
def list_tokens(request: Request, who: Admin) -> list[dict[str, Any]]:
    return [tokens.token_json(t) for t in tokens.visible(_ctx(request).store, who)]


@router.delete("/{token_id}", response_model=TokenOut)
def revoke_token(token_id: int, request: Request, who: Admin) -> dict[str, Any]:
    store = _ctx(request).store
    with audit.audited(store, audit.actor_of(who), "token.revoke", str(token_id)):
        record = tokens.revoke(store, who, token_id)
    return {**tokens.token_json(record), "state": "revoked"}
