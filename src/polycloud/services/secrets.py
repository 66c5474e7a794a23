"""Secrets use cases of the API: list, set, delete and rotate the master key, within the caller's rights.

The `Vault` (`polycloud.secrets`) keeps the values; this adds who may do what and the audit trail. A
token scoped to a project manages that project's secrets only; fleet-wide secrets (no project) need an
unscoped token, and so does rotating the master key. No answer or audit entry ever carries a value.

The changes take the vault as `vault()`, called once the caller is allowed, inside the audited block: a
server that keeps no secrets (the call raises) refuses after the checks, and the attempt is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polycloud.secrets import Vault
from polycloud.services import audit
from polycloud.services.governance import ForbiddenError
from polycloud.state import TokenRecord
from polycloud.state.records import SecretRecord
from polycloud.state.repositories import AuditWriter

VaultOf = Callable[[], Vault]
"""Gives the control plane's vault, or raises when it keeps none."""


def check_scope(caller: TokenRecord, project: str | None) -> None:
    """Refuse unless `caller` may manage secrets of `project` (None: the fleet-wide scope)."""
    if caller.project is not None and caller.project != project:
        scope = f"project {project!r}" if project else "the fleet-wide scope"
        raise ForbiddenError(f"a token of project {caller.project!r} may not manage secrets of {scope}")


def secret_json(record: SecretRecord) -> dict[str, Any]:
    """A secret as the API lists it: never its value."""
    return {
        "name": record.name,
        "project": record.project,
        "version": record.version,
        "keyId": record.key_id,
        "createdAt": record.created_at.isoformat(),
        "updatedAt": record.updated_at.isoformat(),
    }


def visible(vault: Vault, caller: TokenRecord) -> list[SecretRecord]:
    """Every secret `caller` may see (names, projects and versions)."""
    return [r for r in vault.list() if caller.project is None or r.project == caller.project]


def set_secret(
    store: AuditWriter, vault: VaultOf, caller: TokenRecord, name: str, value: str, project: str | None
) -> SecretRecord:
    """Create secret `name` of `project` or give it a new value; audited as "secret.set"."""
    check_scope(caller, project)
    with audit.audited(store, audit.actor_of(caller), "secret.set", name, project=project) as entry:
        record = vault().set(name, value, project)
        entry.detail["version"] = record.version
    return record


def delete_secret(
    store: AuditWriter, vault: VaultOf, caller: TokenRecord, name: str, project: str | None
) -> None:
    """Delete secret `name` of `project`; audited as "secret.delete"."""
    check_scope(caller, project)
    with audit.audited(store, audit.actor_of(caller), "secret.delete", name, project=project):
        vault().delete(name, project)


def rotate_master(store: AuditWriter, vault: VaultOf, caller: TokenRecord) -> dict[str, Any]:
    """Re-wrap every data key under a new master key (fleet-wide callers only); audited as
    "secret.rotate-master". Returns `{"rewrapped": count, "keyId": the new master key's id}`."""
    if caller.project is not None:
        raise ForbiddenError(f"a token of project {caller.project} may not rotate the master key")
    found = vault()
    with audit.audited(store, audit.actor_of(caller), "secret.rotate-master", "master-key") as entry:
        count = found.rotate_master()
        entry.detail |= {"rewrapped": count, "keyId": found.wrapper.key_id}
    return {"rewrapped": count, "keyId": found.wrapper.key_id}
