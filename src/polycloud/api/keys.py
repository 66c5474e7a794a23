"""/api/v1/keys: gateway inference keys. Create (deployer; the key is in this answer only), list, revoke.

A key belongs to one live Service; a token scoped to a project manages keys of that project's services.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from polycloud.api.auth import Deployer, Viewer
from polycloud.services import audit
from polycloud.services.governance import ForbiddenError
from polycloud.state import Store, TokenRecord
from polycloud.state.records import InferenceKeyRecord

router = APIRouter(prefix="/api/v1/keys", tags=["inference keys"])


class KeyBody(BaseModel):
    service: str = Field(min_length=1, max_length=253)
    name: str = Field(default="default", min_length=1, max_length=253, description="A label for humans.")
    rps: float = Field(default=50.0, gt=0, le=1e6, description="Sustained requests per second.")
    burst: int = Field(default=100, ge=1, le=10**7, description="Requests at once after a quiet spell.")
    monthlyQuota: int | None = Field(
        default=None, ge=1, le=10**15, description="Requests per calendar month (UTC); none by default."
    )


def as_json(record: InferenceKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "service": record.service,
        "name": record.name,
        "prefix": record.prefix,
        "rps": record.rps,
        "burst": record.burst,
        "monthlyQuota": record.monthly_quota,
        "usedThisMonth": record.used_this_month,
        "createdAt": record.created_at.isoformat(),
        "revoked": record.revoked,
    }


def _store(request: Request) -> Store:
    store: Store = request.app.state.ctx.store
    return store


def _projects(store: Store) -> dict[str, str | None]:
    return {w.name: w.project for w in store.current() if w.kind == "Service"}


def _check_service(store: Store, who: TokenRecord, service: str) -> None:
    projects = _projects(store)
    if service not in projects:
        raise HTTPException(404, f"no live Service named {service!r}")
    if who.project is not None and projects[service] != who.project:
        raise ForbiddenError(f"a token of project {who.project!r} may not manage keys of {service!r}")


@router.post("")
def create_key(body: KeyBody, request: Request, who: Deployer) -> dict[str, Any]:
    """Create an inference key; `key` in the answer is the only copy (only its sha256 is stored)."""
    store = _store(request)
    _check_service(store, who, body.service)
    actor = audit.actor_of(who)
    with audit.audited(store, actor, "key.create", body.service, rps=body.rps, burst=body.burst) as entry:
        key, record = store.create_inference_key(
            service=body.service,
            name=body.name,
            rps=body.rps,
            burst=body.burst,
            monthly_quota=body.monthlyQuota,
        )
        entry.target = f"{body.service}#{record.id}"
    return {"key": key, **as_json(record)}


@router.get("")
def list_keys(request: Request, who: Viewer, service: str | None = None) -> list[dict[str, Any]]:
    """Keys (revoked too) with this month's usage; never the keys themselves."""
    store = _store(request)
    projects = _projects(store)
    records = store.inference_keys(service)
    visible = [r for r in records if who.project is None or projects.get(r.service) == who.project]
    return [as_json(r) for r in visible]


@router.delete("/{key_id}")
def revoke_key(key_id: int, request: Request, who: Deployer) -> dict[str, Any]:
    """Revoke a key for good; gateways refuse it within a few seconds."""
    store = _store(request)
    found = next((r for r in store.inference_keys() if r.id == key_id), None)
    if found is None:
        raise HTTPException(404, f"no inference key with id {key_id}")
    if who.project is not None and _projects(store).get(found.service) != who.project:
        raise ForbiddenError(f"a token of project {who.project!r} may not revoke key {key_id}")
    with audit.audited(store, audit.actor_of(who), "key.revoke", str(key_id), service=found.service):
        record = store.revoke_inference_key(key_id)
    return as_json(record)
