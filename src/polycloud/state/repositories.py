"""Small typed views of the state store, one per consumer, so that each part depends on the few methods
it uses rather than on the whole `Store` (which implements every one of them).

A test can hand a consumer a fake of its protocol alone; a reader sees at the signature what a part
may do to the database: the gateway, for instance, reads routes and keys and writes its own reports
and heartbeat, and can do nothing else.
"""

from __future__ import annotations

from typing import Protocol

from polycloud.exchange import KeyGrant, KeyLoad, LoadReport, RevisionCounts
from polycloud.state.control import Lease, MemberInput
from polycloud.state.faults import FaultRecord
from polycloud.state.records import DocumentState, ReplicaRecord, WorkloadState
from polycloud.state.rollout_records import RolloutRecord


class Membership(Protocol):
    """A member's heartbeat (servers and gateways)."""

    def heartbeat(self, member: MemberInput) -> None: ...
    def leave(self, member_id: str) -> None: ...


class LeaseRepository(Membership, Protocol):
    """What a server's `Leadership` needs: the leader lease and its heartbeat."""

    def acquire_lease(self, holder: str, ttl_s: float, name: str = ...) -> Lease: ...
    def release_lease(self, holder: str, epoch: int, name: str = ...) -> None: ...


class FaultRepository(Protocol):
    """What the leader's `FaultSync` needs: the faults to carry, and where to note what it did."""

    def live_faults(self) -> list[FaultRecord]: ...
    def mark_faults(self, *, applied: list[int], released: list[int], consumed: list[int]) -> None: ...


class RouteRepository(Protocol):
    """What a gateway reads to build its route table."""

    def replicas(self) -> list[ReplicaRecord]: ...
    def current(self) -> list[WorkloadState]: ...
    def documents(self, kind: str | None = None) -> list[DocumentState]: ...
    def active_rollouts(self) -> list[RolloutRecord]: ...


class ReportRepository(Membership, Protocol):
    """What a gateway writes: its load, per-revision and per-key reports, and its heartbeat."""

    def report_load(self, gateway_id: str, rows: list[LoadReport]) -> None: ...
    def report_revision_counts(self, gateway_id: str, rows: list[RevisionCounts]) -> None: ...
    def report_key_loads(self, gateway_id: str, rows: list[KeyLoad]) -> None: ...


class KeyRepository(Protocol):
    """What a gateway's key guard reads and flushes: key grants and usage counts."""

    def key_grants(self) -> list[KeyGrant]: ...
    def add_key_usage(self, month: str, counts: dict[int, int]) -> None: ...
