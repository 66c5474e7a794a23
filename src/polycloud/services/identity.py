"""People of the company's OpenID Provider, and the rights their RoleBindings give them.

A person's rights are the union of the RoleBindings naming them (by user, or by one of their groups):
a fleet-wide binding gives its role in every project, a project binding in that project. One request
acts with one role in one scope, as a token does: the strongest fleet-wide role when it suffices, else
the one project where the person holds the role the route needs (the `X-Polycloud-Project` header picks
among several). No binding → `ForbiddenError` (403) with the reason.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from polycloud.services import audit
from polycloud.services.governance import RANK, ROLE_BINDING, ForbiddenError
from polycloud.services.oidc import Identity, OidcVerifier

__all__ = ["Grant", "Identity", "PersonRecord", "acting_as", "authenticate", "grants_of", "person"]
from polycloud.spec.models import RoleBinding
from polycloud.state import TokenRecord
from polycloud.state.repositories import AuditWriter, DocumentReader

Role = Literal["viewer", "deployer", "admin"]
PERSON_ID = 0
"""The token id a person's record carries: no token row stands for them."""


@dataclass(frozen=True)
class Grant:
    role: Role
    project: str | None
    binding: str


@dataclass(frozen=True)
class PersonRecord(TokenRecord):
    """A person acting with one role in one scope (a `TokenRecord`, so every route and check takes it)."""

    subject: str = ""
    issuer: str = ""
    groups: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = field(default=())


def grants_of(store: DocumentReader, identity: Identity) -> tuple[Grant, ...]:
    """Every (role, project) the recorded RoleBindings give `identity`."""
    found: list[Grant] = []
    for document in store.documents(ROLE_BINDING):
        binding = RoleBinding.model_validate(document.spec)
        spec = binding.spec
        named = any(
            s.user == identity.username or (s.group is not None and s.group in identity.groups)
            for s in spec.subjects
        )
        if named:
            found.append(Grant(spec.role, spec.project, binding.metadata.name))
    return tuple(found)


def person(identity: Identity, grants: tuple[Grant, ...]) -> PersonRecord:
    """`identity` with its grants, acting (until `acting_as`) as its strongest fleet-wide role or viewer."""
    fleet = [g.role for g in grants if g.project is None]
    return PersonRecord(
        id=PERSON_ID,
        name=identity.username,
        role=max(fleet, key=RANK.__getitem__, default="viewer"),
        project=None,
        created_at=datetime.now(UTC),
        expires_at=datetime.fromtimestamp(identity.expires, UTC),
        revoked=False,
        subject=identity.subject,
        issuer=identity.issuer,
        groups=identity.groups,
        grants=grants,
    )


def acting_as(who: PersonRecord, role: str, project: str | None = None) -> PersonRecord:
    """`who` acting with the least scope that gives `role` (in `project` when the caller names one).

    Raises:
        ForbiddenError: No binding gives `who` that role (the reason names their bindings).
    """
    fleet = _best(who.grants, None)
    if project is None and fleet is not None and RANK[fleet] >= RANK[role]:
        return replace(who, role=fleet, project=None)
    projects = {g.project for g in who.grants if g.project is not None}
    if project is not None:
        projects &= {project}
        if fleet is not None:
            projects.add(project)
    strongest = {p: _best(who.grants, p) for p in sorted(projects)}
    able = {p: r for p, r in strongest.items() if r is not None and RANK[r] >= RANK[role]}
    if len(able) == 1:
        [(scope, best)] = list(able.items())
        return replace(who, role=best, project=scope)
    if able:
        raise ForbiddenError(
            f"{who.name} is {role} in several projects ({', '.join(able)}): name one with the "
            "X-Polycloud-Project header"
        )
    raise ForbiddenError(_refusal(who, role, project))


def _best(grants: tuple[Grant, ...], project: str | None) -> Role | None:
    """The strongest role the grants give in `project` (fleet-wide ones count everywhere)."""
    roles = [g.role for g in grants if g.project is None or g.project == project]
    return max(roles, key=RANK.__getitem__, default=None)


def _refusal(who: PersonRecord, role: str, project: str | None) -> str:
    where = f" in project {project}" if project else ""
    if not who.grants:
        groups = ", ".join(who.groups) or "none"
        return f"no RoleBinding names {who.name} or their groups ({groups}); ask an admin for one"
    held = ", ".join(f"{g.role}@{g.project or 'fleet'} ({g.binding})" for g in who.grants)
    return f"no RoleBinding gives {who.name} the {role} role{where}; theirs: {held}"


class _Store(DocumentReader, AuditWriter, Protocol):
    """What signing a person in reads (their bindings) and writes (the audit entry)."""


_SEEN: OrderedDict[str, None] = OrderedDict()
_SEEN_LOCK = threading.Lock()
SEEN_MAX = 4096
"""ID tokens whose first acceptance this process has already recorded in the audit trail."""


def authenticate(store: _Store, verifier: OidcVerifier, token: str) -> PersonRecord:
    """The person a provider's ID token names, with their grants; the first acceptance of each token
    (a sign-in) is audited with the subject, issuer, groups and the grants it yields.

    Raises:
        UnauthenticatedError: The token is not valid (the reason says why).
    """
    identity = verifier.verify(token)
    who = person(identity, grants_of(store, identity))
    digest = hashlib.sha256(token.encode()).hexdigest()
    with _SEEN_LOCK:
        first = digest not in _SEEN
        _SEEN[digest] = None
        while len(_SEEN) > SEEN_MAX:
            _SEEN.popitem(last=False)
    if first:
        record_sign_in(store, who, "bearer")
    return who


def record_sign_in(store: AuditWriter, who: PersonRecord, how: str) -> None:
    """Audit a person's sign-in: who (subject, issuer, groups) and what their bindings give them."""
    audit.record(
        store,
        actor=audit.actor_of(who),
        action="auth.oidc",
        target=who.issuer,
        detail={
            "with": how,
            "subject": who.subject,
            "issuer": who.issuer,
            "username": who.name,
            "groups": list(who.groups),
            "grants": [f"{g.role}@{g.project or 'fleet'}" for g in who.grants],
        },
    )
