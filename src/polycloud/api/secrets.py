"""/api/v1/secrets: set (deployer), list (viewer), delete (deployer), rotate the master key (admin).

No answer ever carries a value. A token scoped to a project manages that project's secrets only;
fleet-wide secrets (no project) need an unscoped token (`polycloud.services.secrets`).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from polycloud import names
from polycloud.api.auth import Admin, Deployer, Viewer
from polycloud.secrets import Vault
from polycloud.services import secrets
from polycloud.services.context import ApiContext

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


SecretName = Annotated[
    str, Path(pattern=names.SECRET_NAME_PATTERN, description=f"Secret name: {names.SECRET_RULE}.")
]
ProjectParam = Annotated[
    str | None,
    Query(pattern=names.DNS_LABEL_PATTERN, description=f"Project: {names.PROJECT_RULE}; none: fleet-wide."),
]
"""The same rules as the vault's, declared here so a bad name is a 400 before anything runs (and the
OpenAPI document says what is valid)."""


class SecretBody(BaseModel):
    value: str = Field(description="The secret's value; stored encrypted, never returned.")


def vault(request: Request) -> Vault:
    """The control plane's vault (503 when this server was started without one)."""
    found: Vault | None = getattr(request.app.state, "vault", None)
    if found is None:
        raise HTTPException(503, "this control plane keeps no secrets (no master key configured)")
    return found


def _ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


@router.get("")
def list_secrets(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """Every secret the token may see: names, projects and versions, never values."""
    return [secrets.secret_json(r) for r in secrets.visible(vault(request), who)]


@router.put("/{name}")
def set_secret(
    name: SecretName, body: SecretBody, request: Request, who: Deployer, project: ProjectParam = None
) -> dict[str, Any]:
    """Create a secret or give it a new value; replicas that use it are replaced with the new value."""
    c = _ctx(request)
    record = secrets.set_secret(c.store, partial(vault, request), who, name, body.value, project)
    c.wake()
    return secrets.secret_json(record)


@router.delete("/{name}")
def delete_secret(
    name: Annotated[str, Path(max_length=253)], request: Request, who: Deployer, project: ProjectParam = None
) -> dict[str, str]:
    """Delete a secret; services that use it are blocked until it exists again."""
    secrets.delete_secret(_ctx(request).store, partial(vault, request), who, name, project)
    return {"status": "deleted"}


@router.post("/rotate-master")
def rotate_master(request: Request, who: Admin) -> dict[str, Any]:
    """Re-wrap every data key under a new master key, in one transaction (fleet-wide admins only)."""
    return secrets.rotate_master(_ctx(request).store, partial(vault, request), who)
