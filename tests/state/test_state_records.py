"""Content hashes and input validation (no database needed)."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

import pytest

from polycloud.errors import UserError
from polycloud.state import DocumentInput, ReplicaRecord, WorkloadInput, canonical_json, content_hash

from .support import T0, replica

HASH = content_hash({})


def test_content_hash_is_sha256_of_canonical_json() -> None:
    doc = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": {}}}
    assert canonical_json(doc) == '{"a":{"y":{},"z":"é"},"b":[1,2.5,null,true]}'
    assert content_hash(doc) == hashlib.sha256(canonical_json(doc).encode()).hexdigest()
    assert content_hash(doc) == content_hash({"a": {"z": "é", "y": {}}, "b": [1, 2.5, None, True]})
    assert content_hash(doc) != content_hash({**doc, "b": [2.5, 1, None, True]})


@pytest.mark.parametrize("value", [{"when": datetime(2025, 1, 1)}, {"x": {1, 2}}, {"x": math.nan}])
def test_content_hash_refuses_values_json_cannot_carry(value: object) -> None:
    with pytest.raises(UserError, match="not a plain JSON value"):
        content_hash(value)


def test_workload_inputs_are_validated() -> None:
    with pytest.raises(UserError, match="kind of workload 'x' must be one of Service, Job"):
        WorkloadInput("x", "Cluster", {}, HASH, [])  # type: ignore[arg-type]
    with pytest.raises(UserError, match="sha256"):
        WorkloadInput("x", "Service", {}, "abc", [])
    with pytest.raises(UserError, match="must not be empty"):
        WorkloadInput("", "Service", {}, HASH, [])
    with pytest.raises(UserError, match="not a plain JSON value"):
        WorkloadInput("x", "Service", {"t": T0}, HASH, [])


def test_document_inputs_are_validated() -> None:
    with pytest.raises(UserError, match="is a workload"):
        DocumentInput("Service", "x", {}, HASH)
    with pytest.raises(UserError, match="sha256"):
        DocumentInput("Cluster", "x", {}, HASH.upper())


def test_replica_records_are_validated() -> None:
    with pytest.raises(UserError, match="state of replica"):
        ReplicaRecord("r", "w", "c", "active", 1, None, None, "running")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="timezone-aware"):
        ReplicaRecord("r", "w", "c", "active", 1, None, None, "ready", updated_at=T0.replace(tzinfo=None))
    assert replica("w", "c", 0).updated_at == T0
