"""The durable state store: immutable workload revisions, desired and observed state, events and tokens.

Open one with `Store.open(url)` (SQLite file or PostgreSQL; the schema is migrated on open). Inputs and
records are frozen dataclasses from `polycloud.state.records`; `content_hash` gives the canonical digest
that decides whether a workload changed.
"""

from polycloud.exchange import LoadReport, RevisionCounts
from polycloud.state import (  # noqa: F401  (every table on Base.metadata)
    tables_accounting,
    tables_control,
    tables_flags,
    tables_governance,
    tables_lineage,
    tables_runtime,
)
from polycloud.state.control import Lease, MemberInput, MemberRecord
from polycloud.state.flag_revisions import FlagRevisionRecord
from polycloud.state.hashing import canonical_json, content_hash
from polycloud.state.records import (
    ApplyResult,
    ChangeAction,
    DocumentChange,
    DocumentInput,
    DocumentState,
    EventInput,
    EventLevel,
    EventRecord,
    ReplicaRecord,
    ReplicaState,
    RevisionRecord,
    TokenRecord,
    TokenRole,
    WorkloadChange,
    WorkloadInput,
    WorkloadKind,
    WorkloadState,
)
from polycloud.state.rollout_records import RolloutRecord, RolloutState
from polycloud.state.store import Clock, Store

__all__ = [
    "ApplyResult",
    "ChangeAction",
    "Clock",
    "DocumentChange",
    "DocumentInput",
    "DocumentState",
    "EventInput",
    "EventLevel",
    "EventRecord",
    "FlagRevisionRecord",
    "Lease",
    "LoadReport",
    "MemberInput",
    "MemberRecord",
    "ReplicaRecord",
    "ReplicaState",
    "RevisionCounts",
    "RevisionRecord",
    "RolloutRecord",
    "RolloutState",
    "Store",
    "TokenRecord",
    "TokenRole",
    "WorkloadChange",
    "WorkloadInput",
    "WorkloadKind",
    "WorkloadState",
    "canonical_json",
    "content_hash",
]
