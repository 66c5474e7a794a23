"""Test helpers for the state store tests: a fake clock and builders of inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from polycloud.state import (
    DocumentInput,
    ReplicaRecord,
    ReplicaState,
    WorkloadInput,
    WorkloadKind,
    content_hash,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def workload(
    name: str, version: int = 1, *, kind: WorkloadKind = "Service", project: str | None = None
) -> WorkloadInput:
    """A workload whose content is determined by (name, version)."""
    spec: dict[str, Any] = {"model": f"{name}.onnx", "version": version}
    placement = [{"cluster": "aws-use1", "role": "active", "replicas": version}]
    return WorkloadInput(name, kind, spec, content_hash(spec), placement, project)


def document(kind: str, name: str, version: int = 1) -> DocumentInput:
    """A declared object whose content is determined by (kind, name, version)."""
    spec: dict[str, Any] = {"name": name, "version": version}
    return DocumentInput(kind, name, spec, content_hash(spec))


def replica(
    workload_name: str, cluster: str, index: int, state: ReplicaState = "ready", *, pid: int | None = None
) -> ReplicaRecord:
    """A replica of `workload_name` on `cluster` at revision 1."""
    return ReplicaRecord(
        id=f"{workload_name}-{cluster}-{index}",
        workload=workload_name,
        cluster=cluster,
        role="active",
        revision=1,
        endpoint=f"http://127.0.0.1:{41000 + index}",
        pid=pid,
        state=state,
        message="",
        updated_at=T0,
    )
