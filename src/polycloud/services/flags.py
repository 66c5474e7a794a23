"""Feature flags outside an apply: list them, read a flag's versions, flip its kill switch, roll it back.

A FeatureFlag is applied with the fleet like any document (and versioned by every apply that changes
it); these use cases set one flag at once, as a new version, validated like an applied one. The listing
also shows how the gateways evaluated each flag lately: counts and shares per variant. The
gateways follow within a route refresh. The next `apply` of the fleet's files sets the flag as the
files say: a kill switch meant to last goes into the file too. Flags are shared by every project, so
only fleet-wide tokens change them (the API checks; each change is audited there).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from polycloud.errors import ConflictError, NotFoundError, UserError
from polycloud.services import flag_shares
from polycloud.services.flag_shares import DEFAULT_WINDOW_S
from polycloud.spec.models import FeatureFlag
from polycloud.state import FlagRevisionRecord, content_hash
from polycloud.state.repositories_services import FlagRepository

KIND = "FeatureFlag"
State = Literal["ENABLED", "DISABLED"]


def version_json(record: FlagRevisionRecord) -> dict[str, Any]:
    """One version as the API shows it."""
    spec = record.spec.get("spec", {})
    return {
        "name": record.name,
        "version": record.number,
        "state": "DELETED" if record.deleted else spec.get("state"),
        "defaultVariant": spec.get("defaultVariant"),
        "author": record.author,
        "message": record.message,
        "createdAt": record.created_at.isoformat(),
        "spec": spec,
    }


def listing(
    store: FlagRepository, window_s: int = DEFAULT_WINDOW_S, project: str | None = None
) -> list[dict[str, Any]]:
    """Every live flag with its state, default variant and current version, its evaluations per variant
    over about the last `window_s` seconds (`polycloud.services.flag_shares`) and the services it routes
    (only those of `project` for a project's caller)."""
    counts = store.flag_counts(float(window_s))
    routing = flag_shares.routing_of(store.current(), project)
    flags = []
    for doc in store.documents(KIND):
        versions = store.flag_history(doc.name)
        variants = sorted(doc.spec["spec"]["variants"])
        routes = routing.get(doc.name, [])
        flags.append(
            {
                **version_json(versions[-1]),
                "variants": variants,
                "routing": routes,
                "evaluations": flag_shares.shares(doc.name, variants, counts, routes, window_s),
            }
        )
    return flags


def history(store: FlagRepository, name: str) -> list[dict[str, Any]]:
    """Every version of flag `name`, oldest first.

    Raises:
        NotFoundError: No flag of that name was ever applied.
    """
    return [version_json(r) for r in store.flag_history(name)]


def set_state(store: FlagRepository, name: str, state: State, author: str) -> dict[str, Any]:
    """Enable or disable (the kill switch) live flag `name`: a new version with `state`.

    Raises:
        NotFoundError: No live flag of that name.
        ConflictError: The flag is in that state already.
    """
    current = _live(store, name)
    if current["spec"]["state"] == state:
        raise ConflictError(f"flag {name!r} is {state} already")
    document = {**current, "spec": {**current["spec"], "state": state}}
    verb = "disabled (kill switch)" if state == "DISABLED" else "enabled"
    return _put(store, name, document, author, f"{verb} by {author}")


def rollback(store: FlagRepository, name: str, to: int | None, author: str) -> dict[str, Any]:
    """Make an earlier version of flag `name` current again, as a new version.

    Args:
        to: The version to restore; by default the latest one before the current whose content differs.

    Raises:
        NotFoundError: No such flag, or no such version of it.
        ConflictError: Nothing to roll back to, or `to` is the current content already.
    """
    versions = store.flag_history(name)
    current = versions[-1]
    if to is None:
        earlier = [
            v
            for v in versions[:-1]
            if not v.deleted and (current.deleted or v.content_hash != current.content_hash)
        ]
        if not earlier:
            raise ConflictError(f"flag {name!r} has no earlier version with different content")
        target = earlier[-1]
    else:
        found = [v for v in versions if v.number == to]
        if not found:
            raise NotFoundError(f"flag {name!r} has no version {to}; its versions are 1..{current.number}")
        target = found[0]
        if target.deleted:
            raise ConflictError(f"version {to} of flag {name!r} is its deletion; name a version with content")
        if target.content_hash == current.content_hash and not current.deleted:
            raise ConflictError(f"version {to} of flag {name!r} has the current content already")
    return _put(store, name, target.spec, author, f"rollback to v{target.number}")


def _live(store: FlagRepository, name: str) -> dict[str, Any]:
    for doc in store.documents(KIND):
        if doc.name == name:
            return doc.spec
    raise NotFoundError(f"no live FeatureFlag named {name!r} (apply one first)")


def _put(
    store: FlagRepository, name: str, document: dict[str, Any], author: str, message: str
) -> dict[str, Any]:
    try:
        normalised = FeatureFlag.model_validate(document).model_dump(mode="json")
    except ValidationError as e:  # a version saved by an older polycloud that this one refuses
        raise UserError(f"flag {name!r} cannot be set so: {e.errors()[0]['msg']}") from e
    return version_json(
        store.put_flag(name, normalised, content_hash(normalised), author=author, message=message)
    )
