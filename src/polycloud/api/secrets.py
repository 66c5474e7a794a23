"""/api/v1/secrets: set (deployer), list (viewer), delete (deployer), rotate the master key (admin).

No answer ever carries a value. A token scoped to a project manages that project's secrets only;
fleet-wide secrets (no project) need an unscoped token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from polycloud.api.auth import Admin, Deployer, Viewer
from polycloud.secrets import Vault
from polycloud.services import audit
from polycloud.services.governance import ForbiddenError
from polycloud.state import TokenRecord
from polycloud.state.records import SecretRecord

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


class SecretBody(BaseModel):
    value: str = Field(description="The secret's value; stored encrypted, never returned.")


def vault(request: Request) -> Vault:
    """The control plane's vault (503 when this server was started without one)."""
    found: Vault | None = getattr(request.app.state, "vault", None)
    if found is None:
        raise HTTPException(503, "this control plane keeps no secrets (no master key configured)")
    return found


def in_scope(who: TokenRecord, project: str | None) -> None:
    """403 unless `who` may manage secrets of `project` (None: the fleet-wide scope)."""
    if who.project is not None and who.project != project:
        scope = f"project {project!r}" if project else "the fleet-wide scope"
        raise ForbiddenError(f"a token of project {who.project!r} may not manage secrets of {scope}")


def as_json(record: SecretRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "project": record.project,
        "version": record.version,
        "keyId": record.key_id,
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


@router.get("")
def list_secrets(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """Every secret the token may see: names, projects and versions, never values."""
    records = vault(request).list()
    return [as_json(r) for r in records if who.project is None or r.project == who.project]


@router.put("/{name}")
def set_secret(
    name: str, body: SecretBody, request: Request, who: Deployer, project: str | None = None
) -> dict[str, Any]:
    """Create a secret or give it a new value; replicas that use it are replaced with the new value."""
    in_scope(who, project)
    store = request.app.state.ctx.store
    with audit.audited(store, audit.actor_of(who), "secret.set", name, project=project) as entry:
        record = vault(request).set(name, body.value, project)
        entry.detail["version"] = record.version
    request.app.state.ctx.wake()
    return as_json(record)


@router.delete("/{name}")
def delete_secret(name: str, request: Request, who: Deployer, project: str | None = None) -> dict[str, str]:
    """Delete a secret; services that use it are blocked until it exists again."""
    in_scope(who, project)
    store = request.app.state.ctx.store
    with audit.audited(store, audit.actor_of(who), "secret.delete", name, project=project):
        vault(request).delete(name, project)
    return {"status": "deleted"}


@router.post("/rotate-master")
def rotate_master(request: Request, who: Admin) -> dict[str, Any]:
    """Re-wrap every data key under a new master key, in one transaction (fleet-wide admins only)."""
    if who.project is not None:
        raise ForbiddenError(f"a token of project {who.project} may not rotate the master key")
    found = vault(request)
    store = request.app.state.ctx.store
    with audit.audited(store, audit.actor_of(who), "secret.rotate-master", "master-key") as entry:
        count = found.rotate_master()
        entry.detail |= {"rewrapped": count, "keyId": found.wrapper.key_id}
    return {"rewrapped": count, "keyId": found.wrapper.key_id}
