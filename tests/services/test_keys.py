"""Inference keys within the caller's rights: a project token sees and changes its services' keys only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.state.support import workload

from polycloud.errors import NotFoundError
from polycloud.services import keys
from polycloud.services.governance import ForbiddenError
from polycloud.state import Store, TokenRecord


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    opened.apply(
        workloads=[
            workload("fraud", project="risk"),
            workload("reco", project="growth"),
            workload("nightly", kind="Job"),
        ],
        documents=[],
        author="t",
        message="",
    )
    yield opened
    opened.close()


def token(store: Store, project: str | None) -> TokenRecord:
    _, record = store.create_token(name="deployer", role="deployer", project=project, expires_at=None)
    return record


def make(store: Store, caller: TokenRecord, service: str) -> int:
    _, record = keys.create(store, caller, service=service, name="k", rps=1.0, burst=1, monthly_quota=None)
    return record.id


def test_a_key_is_created_for_a_live_service_of_the_callers_project_and_audited(store: Store) -> None:
    key, record = keys.create(
        store, token(store, "risk"), service="fraud", name="k", rps=2.0, burst=3, monthly_quota=10
    )
    assert key.startswith(record.prefix) and keys.key_json(record)["monthlyQuota"] == 10
    assert key not in repr(keys.key_json(record))
    entry = store.audit_log(limit=1)[0]
    assert (entry.action, entry.target, entry.outcome) == ("key.create", f"fraud#{record.id}", "ok")
    assert key not in repr(entry)


@pytest.mark.parametrize(
    ("service", "project", "error"),
    [("nope", None, NotFoundError), ("nightly", None, NotFoundError), ("fraud", "growth", ForbiddenError)],
)
def test_a_key_is_refused_for_a_missing_service_or_another_project(
    store: Store, service: str, project: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        make(store, token(store, project), service)
    assert store.inference_keys() == [] and store.audit_log(limit=10) == []


def test_a_project_token_sees_only_its_projects_keys(store: Store) -> None:
    fleet = token(store, None)
    fraud, reco = make(store, fleet, "fraud"), make(store, fleet, "reco")
    assert [r.id for r in keys.visible(store, fleet)] == [fraud, reco]
    assert [r.id for r in keys.visible(store, token(store, "risk"))] == [fraud]
    assert [r.id for r in keys.visible(store, fleet, "reco")] == [reco]
    assert keys.visible(store, token(store, "risk"), "reco") == []


def test_revoking_checks_the_key_and_its_project(store: Store) -> None:
    fraud = make(store, token(store, None), "fraud")
    with pytest.raises(NotFoundError, match="no inference key with id 999"):
        keys.revoke(store, token(store, None), 999)
    with pytest.raises(ForbiddenError):
        keys.revoke(store, token(store, "growth"), fraud)
    assert not store.inference_keys()[0].revoked

    assert keys.revoke(store, token(store, "risk"), fraud).revoked
    entry = store.audit_log(limit=1)[0]
    assert (entry.action, entry.target, entry.detail) == ("key.revoke", str(fraud), {"service": "fraud"})
