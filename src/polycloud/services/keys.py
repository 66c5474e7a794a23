"""Gateway inference keys: create (the key is returned once), list and revoke, within the caller's rights.

A key belongs to one live Service; a token scoped to a project manages the keys of that project's
services only. Creating and revoking are audited ("key.create", "key.revoke"); a refusal is left to the
API, which records every refusal the same way.
"""

from __future__ import annotations

from typing import Any

from polycloud.errors import NotFoundError
from polycloud.services import audit
from polycloud.services.governance import ForbiddenError
from polycloud.state import TokenRecord
from polycloud.state.records import InferenceKeyRecord
from polycloud.state.repositories import WorkloadReader
from polycloud.state.repositories_services import InferenceKeyRepository


def key_json(record: InferenceKeyRecord) -> dict[str, Any]:
    """A key as the API lists it: never the key itself."""
    return {
        "id": record.id,
        "service": record.service,
        "name": record.name,
        "prefix": record.prefix,
        "rps": record.rps,
        "burst": record.burst,
        "monthlyQuota": record.monthly_quota,
        "usedThisMonth": record.used_this_month,
        "tokensPerMinute": record.tokens_per_minute,
        "monthlyTokens": record.monthly_tokens,
        "tokensThisMonth": record.tokens_this_month,
        "createdAt": record.created_at.isoformat(),
        "revoked": record.revoked,
    }


def create(
    store: InferenceKeyRepository,
    caller: TokenRecord,
    *,
    service: str,
    name: str,
    rps: float,
    burst: int,
    monthly_quota: int | None,
    tokens_per_minute: int | None = None,
    monthly_tokens: int | None = None,
) -> tuple[str, InferenceKeyRecord]:
    """Create a key of live Service `service`; returns the key (its only copy) and its record.

    Token limits (`tokens_per_minute`, `monthly_tokens`) count the prompt and completion tokens of
    the service's LLM answers; they sit beside the request limits and are audited with them.

    Raises:
        NotFoundError: No live Service is named `service`.
        ForbiddenError: `caller` is a token of another project than the service's.
    """
    projects = _projects(store)
    if service not in projects:
        raise NotFoundError(f"no live Service named {service!r}")
    if caller.project is not None and projects[service] != caller.project:
        raise ForbiddenError(f"a token of project {caller.project!r} may not manage keys of {service!r}")
    limits: dict[str, int] = {}
    if tokens_per_minute is not None:
        limits["tokens_per_minute"] = tokens_per_minute
    if monthly_tokens is not None:
        limits["monthly_tokens"] = monthly_tokens
    with audit.audited(
        store, audit.actor_of(caller), "key.create", service, rps=rps, burst=burst, **limits
    ) as entry:
        key, record = store.create_inference_key(
            service=service,
            name=name,
            rps=rps,
            burst=burst,
            monthly_quota=monthly_quota,
            tokens_per_minute=tokens_per_minute,
            monthly_tokens=monthly_tokens,
        )
        entry.target = f"{service}#{record.id}"
    return key, record


def visible(
    store: InferenceKeyRepository, caller: TokenRecord, service: str | None = None
) -> list[InferenceKeyRecord]:
    """The keys (revoked ones too) of `service`, or of every service, that `caller` may see."""
    projects = _projects(store)
    records = store.inference_keys(service)
    return [r for r in records if caller.project is None or projects.get(r.service) == caller.project]


def revoke(store: InferenceKeyRepository, caller: TokenRecord, key_id: int) -> InferenceKeyRecord:
    """Revoke key `key_id` for good; returns its record, revoked.

    Raises:
        NotFoundError: There is no key `key_id`.
        ForbiddenError: `caller` is a token of another project than the key's service.
    """
    found = next((r for r in store.inference_keys() if r.id == key_id), None)
    if found is None:
        raise NotFoundError(f"no inference key with id {key_id}")
    if caller.project is not None and _projects(store).get(found.service) != caller.project:
        raise ForbiddenError(f"a token of project {caller.project!r} may not revoke key {key_id}")
    with audit.audited(store, audit.actor_of(caller), "key.revoke", str(key_id), service=found.service):
        return store.revoke_inference_key(key_id)


def _projects(store: WorkloadReader) -> dict[str, str | None]:
    """The project of every live Service, by name."""
    return {w.name: w.project for w in store.current() if w.kind == "Service"}
