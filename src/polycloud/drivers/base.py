"""The driver contract: what the controller may ask of any cluster driver.

A driver knows nothing of placement or specs: it is told which replicas should exist and reports which
do. Optional capabilities (fault injection, ...) are separate small protocols; core code checks
`isinstance(driver, SupportsFaults)`, never the driver's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from polycloud.spec.models import Cluster, Runtime, Service

ReplicaState = Literal["starting", "ready", "failed", "stopping"]


@dataclass(frozen=True)
class ReplicaSpec:
    """A replica the controller wants running.

    `spec_hash` identifies the desired content (model, env, revision): a running replica whose hash
    differs is outdated and gets replaced by a rolling update.
    """

    id: str
    service: str
    cluster: str
    revision: int
    role: str
    spec_hash: str
    model_path: str
    """The model's absolute path or URI; "" for a runtime given no model."""
    model_sha256: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    delay_ms: float = 0.0
    protocol: str = "oip-v2"
    """What the replica speaks: "oip-v2" or "openai"."""
    runtime: Runtime | None = None
    """The user's server the replica runs (command locally, image on Kubernetes); None: polycloud's."""


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica as the driver observes it right now."""

    id: str
    service: str
    cluster: str
    revision: int
    role: str
    spec_hash: str
    state: ReplicaState
    endpoint: str | None = None
    pid: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Fault:
    """A fault to inject. `kind` decides which fields matter.

    - `kill`: SIGKILL replica `replica_id` (as if it crashed).
    - `down`: take the whole cluster down: every replica stops and none may start until cleared.
    - `latency`: add `delay_ms` to every response of the cluster's replicas.
    - `errors`: answer a fraction `error_rate` of inference requests with HTTP 500.
    - `freeze`: a black hole: every replica of the cluster stops answering but keeps its sockets, so
      connections still open and requests are still accepted (a partitioned network, a hung driver).
      The replicas are not failed and not replaced while it lasts; clearing resumes them.
    """

    kind: Literal["kill", "down", "latency", "errors", "freeze"]
    replica_id: str | None = None
    delay_ms: float = 0.0
    error_rate: float = 0.0


class ClusterDriver(Protocol):
    """One cluster's driver. Every method is idempotent and returns quickly (no waiting for readiness)."""

    cluster: str

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every replica this driver runs for the cluster, including ones started before a crash of
        the control plane. This is the truth the reconciler acts on."""
        ...

    def start_replica(self, spec: ReplicaSpec) -> ReplicaStatus:
        """Start `spec` unless a replica with its id already runs; return its status (usually
        `starting`). Raises `TransientError` when it cannot start now (cluster down, no port)."""
        ...

    def stop_replica(self, replica_id: str, grace_s: float = 10.0) -> None:
        """Stop a replica, letting in-flight requests finish within `grace_s`. Must not raise if the
        replica is already gone. May return before the process has exited."""
        ...

    def close(self) -> None:
        """Release driver resources; running replicas keep running."""
        ...


@runtime_checkable
class SupportsFaults(Protocol):
    """Drivers that can inject faults, for drills and tests."""

    def inject(self, fault: Fault) -> None:
        """Apply `fault` to this cluster."""
        ...

    def clear_faults(self) -> None:
        """Undo every injected fault: a downed cluster may start replicas again, frozen replicas answer
        again, delays and error rates return to normal. Killed replicas are not revived here (the
        reconciler does that)."""
        ...


class DeclaredSpecs(Protocol):
    """Read access to what is declared, for drivers that need more than a `ReplicaSpec` says.

    A cluster driver (kubernetes) reads its own Cluster document (context, namespace, image) and the
    Service revision a replica runs (resources, which env names are secrets). Implemented over the
    state store by the control plane; drivers never import the store.
    """

    def cluster(self, name: str) -> Cluster | None:
        """The declared Cluster `name`, or None."""
        ...

    def service(self, name: str, revision: int) -> Service | None:
        """Revision `revision` of Service `name`, or None when there is no such revision."""
        ...
