"""Versions of feature flags in the store (SQLite and PostgreSQL): every apply that changes a flag, a
deletion included, appends one; `put_flag` sets a flag outside an apply as a new version."""

from __future__ import annotations

from typing import Any

import pytest

from polycloud.errors import NotFoundError
from polycloud.state import DocumentInput, Store, content_hash


def flag(state: str = "ENABLED", default: str = "off") -> dict[str, Any]:
    spec = {"state": state, "variants": {"on": True, "off": False}, "defaultVariant": default}
    return {"apiVersion": "polycloud/v1", "kind": "FeatureFlag", "metadata": {"name": "f"}, "spec": spec}


def put(store: Store, *documents: dict[str, Any], author: str = "ana") -> None:
    inputs = [DocumentInput(d["kind"], d["metadata"]["name"], d, content_hash(d)) for d in documents]
    store.apply(workloads=[], documents=inputs, author=author, message="why")


def test_applies_and_puts_append_versions(store: Store) -> None:
    put(store, flag())
    put(store, flag())  # unchanged: no version
    put(store, flag(default="on"), author="bo")
    put(store)  # no longer declared: deleted, a version too
    killed = flag(state="DISABLED")
    record = store.put_flag("f", killed, content_hash(killed), author="cy", message="kill switch")
    assert record.number == 4 and not record.deleted
    history = store.flag_history("f")
    assert [(v.number, v.author, v.deleted, v.spec["spec"]["state"]) for v in history] == [
        (1, "ana", False, "ENABLED"),
        (2, "bo", False, "ENABLED"),
        (3, "ana", True, "ENABLED"),
        (4, "cy", False, "DISABLED"),
    ]
    assert [d.spec["spec"]["state"] for d in store.documents("FeatureFlag")] == ["DISABLED"]


def test_other_documents_get_no_versions_and_unknown_flags_are_not_found(store: Store) -> None:
    cluster = {"apiVersion": "polycloud/v1", "kind": "Cluster", "metadata": {"name": "f"}, "spec": {}}
    put(store, cluster)
    with pytest.raises(NotFoundError, match="no FeatureFlag named 'f'"):
        store.flag_history("f")
    with pytest.raises(NotFoundError):
        store.put_flag("f", flag(), content_hash(flag()), author="a", message="")
