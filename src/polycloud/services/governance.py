"""Project scoping of API tokens: what a token of one project may see and change.

A token without a project is fleet-wide. A project token sees and changes only workloads whose
`metadata.labels.project` is its project; shared objects (clusters, datasets, policies, faults, the
control plane itself) are changed by fleet-wide tokens only. A refusal is a `ForbiddenError` (HTTP 403),
which names what is not allowed without naming other projects' workloads.

A project token's apply declares the whole of its project: the server adds the recorded shared documents
and every other project's workloads, so pruning only ever touches the caller's project, and refuses the
apply when the joint plan would change anything outside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from polycloud.errors import NotFoundError, UserError
from polycloud.services import inspecting
from polycloud.services.applying import FleetService, document_inputs
from polycloud.services.documents import documents_to_fleet
from polycloud.spec.models import RoleBinding
from polycloud.state import TokenRecord
from polycloud.state.repositories import DesiredReader, DocumentReader, HistoryReader, WorkloadReader
from polycloud.state.repositories_services import ScopedEventReader

_APPLYING = threading.Lock()
RANK = {"viewer": 0, "deployer": 1, "admin": 2}
"""Roles in order: each may do everything the ones before it may."""
WORKLOAD_KINDS = ("Service", "Job")
ROLE_BINDING = "RoleBinding"


class ForbiddenError(UserError):
    """The caller's token does not allow this (HTTP 403)."""


class UnauthenticatedError(UserError):
    """No valid token came with the request (HTTP 401)."""


def allows(token: TokenRecord, project: str | None) -> bool:
    """Whether `token` may act on something of `project` (None: not in any project)."""
    return token.project is None or token.project == project


def require_role(token: TokenRecord, role: str) -> None:
    """Refuse unless `token`'s role is `role` or above."""
    if RANK[token.role] < RANK[role]:
        raise ForbiddenError(f"role {token.role} may not do this; {role} or above is needed")


def require_fleet_wide(token: TokenRecord, what: str) -> None:
    """Refuse a project token: `what` concerns every project."""
    if token.project is not None:
        raise ForbiddenError(f"a token of project {token.project} may not {what}; use a fleet-wide token")


def check_workload(store: HistoryReader, token: TokenRecord, name: str) -> None:
    """Refuse unless `token` may act on workload `name` (the project of its newest revision).

    A project token asking for an unknown workload gets a plain "not found", without the close names
    of other projects' workloads that the store would suggest.
    """
    try:
        newest = store.history(name)[-1]
    except NotFoundError:
        if token.project is None:
            raise
        raise NotFoundError(f"no workload named {name!r} in project {token.project}") from None
    if not allows(token, newest.project):
        raise ForbiddenError(f"workload {name} is not in project {token.project}")


def check_rollback(store: HistoryReader, token: TokenRecord, name: str, to: int | None) -> None:
    """Refuse a rollback that would act on, or move a workload into, another project."""
    check_workload(store, token, name)
    if token.project is None:
        return
    history = store.history(name)
    if to is not None:
        target = next((r for r in history if r.number == to), None)
    else:
        differing = [r for r in history[:-1] if r.content_hash != history[-1].content_hash]
        target = differing[-1] if differing else None
    if target is not None and not allows(token, target.project):
        raise ForbiddenError(f"revision {target.number} of {name} is not in project {token.project}")


def own_workloads(store: WorkloadReader, token: TokenRecord) -> set[str] | None:
    """Names of the current workloads `token` may see; None for a fleet-wide token (all of them)."""
    if token.project is None:
        return None
    return {w.name for w in store.current() if w.project == token.project}


def visible_status(store: WorkloadReader, token: TokenRecord, status: dict[str, Any]) -> dict[str, Any]:
    """`status` with only the services `token` may see."""
    names = own_workloads(store, token)
    if names is None:
        return status
    services = [s for s in status["services"] if s["name"] in names]
    anomalies = [a for a in status.get("anomalies", []) if a["service"] in names]
    return {**status, "services": services, "anomalies": anomalies}


def visible_events(
    store: ScopedEventReader, token: TokenRecord, workload: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest events `token` may see: a project token sees only its workloads' events."""
    if workload is not None:
        check_workload(store, token, workload)
        return inspecting.events(store, workload, limit)
    names = own_workloads(store, token)
    if names is None:
        return inspecting.events(store, None, limit)
    merged = [e for name in sorted(names) for e in inspecting.events(store, name, limit)]
    return sorted(merged, key=lambda e: str(e["time"]), reverse=True)[:limit]


def check_declared(documents: list[dict[str, Any]], token: TokenRecord) -> None:
    """Refuse workload documents outside `token`'s project (before any other check of them)."""
    if token.project is None:
        return
    for index, doc in enumerate(documents):
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        metadata = _mapping(doc.get("metadata"))
        if _mapping(metadata.get("labels")).get("project") != token.project:
            raise ForbiddenError(
                f"document[{index}] {doc['kind']} {metadata.get('name')!r}: a token of project "
                f"{token.project} may only declare workloads labelled project: {token.project}"
            )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def apply_as(
    fleet: FleetService, token: TokenRecord, documents: list[dict[str, Any]], *, message: str, dry_run: bool
) -> dict[str, Any]:
    """Apply (or preview) `documents` with `token`'s rights; the preview JSON it may see.

    Applies through this control plane run one at a time: a project apply re-declares the other
    projects' workloads as it read them, and must not undo an apply that lands in between.
    """
    check_declared(documents, token)
    with _APPLYING:
        return _apply_as(fleet, token, documents, message=message, dry_run=dry_run)


def _apply_as(
    fleet: FleetService, token: TokenRecord, documents: list[dict[str, Any]], *, message: str, dry_run: bool
) -> dict[str, Any]:
    author = token.name
    if token.project is None:
        if token.role != "admin":
            documents = _keep_role_bindings(fleet.store, documents)
        return fleet.apply(documents, author=author, message=message, dry_run=dry_run).to_json()
    store = fleet.store
    mine = {_name(d) for d in documents if d.get("kind") in WORKLOAD_KINDS}
    full = _whole_fleet(store, token, documents, mine)
    _check_shared_unchanged(store, fleet, full)
    preview = fleet.apply(full, author=author, message=message, dry_run=True)
    mine |= own_workloads(store, token) or set()
    outside = sorted(c.workload for c in preview.changes if c.workload not in mine and c.action != "=")
    if outside:
        raise ForbiddenError(
            f"this apply would also change {len(outside)} workload(s) of other projects (their placement "
            "shares clusters and quotas with yours); ask a fleet-wide deployer to apply it"
        )
    if not dry_run:
        preview = fleet.apply(full, author=author, message=message, dry_run=False)
    return _only(preview.to_json(), mine.__contains__, preview.plan.baseline_for(mine))


def _whole_fleet(
    store: DesiredReader, token: TokenRecord, documents: list[dict[str, Any]], mine: set[str]
) -> list[dict[str, Any]]:
    """A project's documents plus the recorded shared documents and other projects' workloads."""
    current = store.current()
    taken = sorted(w.name for w in current if w.name in mine and w.project != token.project)
    if taken:
        raise ForbiddenError(f"workload {taken[0]} exists outside project {token.project}")
    declared = {(d.get("kind"), _name(d)) for d in documents}
    shared = [d.spec for d in store.documents() if (d.kind, d.name) not in declared]
    others = [w.spec for w in current if w.project != token.project]
    return [*documents, *shared, *others]


def _keep_role_bindings(store: DocumentReader, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`documents` with the recorded RoleBindings it leaves out; refuse one it adds or changes.

    RoleBindings grant roles: only a fleet-wide admin may change them (a deployer who could would make
    itself admin), and a deployer's apply that does not mention them leaves them as they are.
    """
    recorded = {d.name: d.spec for d in store.documents(ROLE_BINDING)}
    declared: set[str] = set()
    for doc in documents:
        if doc.get("kind") != ROLE_BINDING:
            continue
        name = _name(doc)
        declared.add(name)
        if _normalised(doc) != recorded.get(name):
            raise ForbiddenError(
                f"RoleBinding {name!r}: only a fleet-wide admin may add or change RoleBindings "
                "(leave them out to keep the recorded ones)"
            )
    return [*documents, *(spec for name, spec in recorded.items() if name not in declared)]


def _normalised(doc: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return RoleBinding.model_validate(doc).model_dump(mode="json")
    except ValidationError:
        return None


def _name(doc: dict[str, Any]) -> str:
    return str(_mapping(doc.get("metadata")).get("name", ""))


def _check_shared_unchanged(
    store: DocumentReader, fleet: FleetService, documents: list[dict[str, Any]]
) -> None:
    recorded = {(d.kind, d.name): d.content_hash for d in store.documents()}
    for item in document_inputs(documents_to_fleet(documents, fleet.catalog)):
        if recorded.get((item.kind, item.name)) != item.content_hash:
            raise ForbiddenError(
                f"{item.kind} {item.name} is shared by every project: only a fleet-wide token may add or "
                "change it (leave it out to use the recorded one)"
            )


def _only(
    preview: dict[str, Any], visible: Callable[[str], bool], baseline: tuple[str, float] | None
) -> dict[str, Any]:
    """A preview cut down to the workloads `visible` accepts, with its sums recomputed and `baseline`
    (theirs alone: another project's spend must not show through it)."""
    changes = [c for c in preview["changes"] if visible(c["workload"])]
    plan = preview["plan"]
    placements = [p for p in plan["placements"] if visible(p["workload"])]

    def delta(kind: str) -> float:
        return round(
            sum(float(c["afterUSD"]) - float(c["beforeUSD"]) for c in changes if c["kind"] == kind), 6
        )

    return {
        **preview,
        "changes": changes,
        "deltaUSD": delta("Service"),
        "jobsDeltaUSD": delta("Job"),
        "plan": {
            **plan,
            "placements": placements,
            "infeasible": [i for i in plan["infeasible"] if visible(i["workload"])],
            "totalUSD": round(sum(float(p["totalUSD"]) for p in placements), 6),
            "baselineUSD": baseline[1] if baseline else None,
            "baselineProvider": baseline[0] if baseline else None,
        },
    }
