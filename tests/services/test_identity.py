"""A person's rights are the union of their RoleBindings; a dashboard sign-in keeps who they are and
reads their bindings afresh on every request."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polycloud.services import identity, sessions
from polycloud.services.governance import ForbiddenError
from polycloud.services.identity import Grant, Identity
from polycloud.state import Store
from polycloud.state.records import DocumentInput

ALICE = Identity("sub-a", "https://idp", "alice@example.com", ("ml-risk", "ops"), int(time.time()) + 600)


def who(*grants: tuple[str, str | None]) -> identity.PersonRecord:
    return identity.person(ALICE, tuple(Grant(r, p, f"b{i}") for i, (r, p) in enumerate(grants)))  # type: ignore[arg-type]


def test_the_strongest_fleet_role_when_it_is_enough() -> None:
    acting = identity.acting_as(who(("viewer", None), ("admin", None)), "deployer")
    assert (acting.role, acting.project) == ("admin", None)


def test_a_project_binding_adds_to_a_fleet_wide_one() -> None:
    person = who(("viewer", None), ("deployer", "risk"))
    assert (identity.acting_as(person, "viewer").project) is None
    acting = identity.acting_as(person, "deployer")
    assert (acting.role, acting.project) == ("deployer", "risk")
    named = identity.acting_as(person, "viewer", "other")
    assert (named.role, named.project) == ("viewer", "other")  # fleet-wide viewing reaches every project


def test_several_projects_need_the_caller_to_name_one() -> None:
    person = who(("deployer", "risk"), ("admin", "fraud"))
    with pytest.raises(ForbiddenError, match=r"several projects .*X-Polycloud-Project"):
        identity.acting_as(person, "viewer")
    assert identity.acting_as(person, "viewer", "fraud").role == "admin"
    assert identity.acting_as(person, "admin").project == "fraud"
    with pytest.raises(
        ForbiddenError, match=r"no RoleBinding gives alice@example\.com the admin role in project risk"
    ):
        identity.acting_as(person, "admin", "risk")


def test_no_binding_says_so() -> None:
    with pytest.raises(
        ForbiddenError, match=r"no RoleBinding names alice@example.com or their groups \(ml-risk, ops\)"
    ):
        identity.acting_as(who(), "viewer")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    yield opened
    opened.close()


def bind(store: Store, *specs: dict[str, object]) -> None:
    documents = [
        DocumentInput(
            kind="RoleBinding",
            name=f"b{i}",
            spec={
                "apiVersion": "polycloud/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"b{i}"},
                "spec": spec,
            },
            content_hash=hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest(),
        )
        for i, spec in enumerate(specs)
    ]
    store.apply(workloads=[], documents=documents, author="t", message="", prune=True)


def test_a_dashboard_sign_in_reads_the_bindings_on_every_request(store: Store) -> None:
    bind(store, {"role": "deployer", "project": "risk", "subjects": [{"group": "ml-risk"}]})
    opened = sessions.sign_in(store, ALICE)
    assert opened.secret.startswith("pcp_")
    found = sessions.authenticate(store, session=opened.secret)
    assert isinstance(found, identity.PersonRecord)
    assert found.grants == (Grant("deployer", "risk", "b0"),) and found.issuer == "https://idp"

    bind(store, {"role": "viewer", "subjects": [{"user": "bob@example.com"}]})  # alice's binding removed
    assert sessions.authenticate(store, session=opened.secret).grants == ()  # type: ignore[attr-defined]
    sessions.logout(store, opened.secret)
    with pytest.raises(sessions.UnauthenticatedError):
        sessions.authenticate(store, session=opened.secret)
    entry = store.audit_log(limit=10)[0]
    assert entry.action == "auth.oidc" and entry.detail["with"] == "dashboard"
    assert entry.detail["subject"] == "sub-a" and entry.detail["grants"] == ["deployer@risk"]
