"""What a drill measured, computed from its timeline of requests: pure functions, no I/O, no clock.

Every time is in seconds since the drill's start (the first scheduled arrival). A `Sample` is one client
request: when it was *scheduled* to be sent (open loop: independent of earlier answers), when its answer
(or failure) arrived, its HTTP status (0 when no HTTP answer came at all), the cluster the gateway
named in `x-polycloud-cluster`, and the clusters it names in `x-polycloud-tried`: those of the attempts
that did not give the answer (they failed, or lost a hedge race).

A request *touched* a cluster when that cluster answered it or was tried for it first. The two
headline figures, precisely:

- **rtoMs** (recovery time objective as measured): let `t_f` be the moment the fault injection call
  was *issued* and `t_c` the moment the clearing call was issued. Among requests scheduled in
  `[t_f, t_c)` that touched the failed cluster, take the one answered last; rtoMs is its answer time
  minus `t_f`: from then on, no client request waited on the failed cluster. It is 0 when none touched
  it (traffic left at once). It is null (`None`) when traffic never (fully) left: a request scheduled in
  the last `TAIL_S` seconds of the fault window (or its last half, when the window is shorter) still
  touched the cluster — a gateway that keeps probing a slow cluster with a few requests is in this
  case, and `faultedShare` tells how few; or when the cluster had served no request scheduled before
  `t_f` (there was nothing to move).
- **recoveryMs**: from `t_c` until the answer time of the first request scheduled at or after `t_c` that
  the failed cluster answered with 200; null when none did before the drill ended.

Both are the clients' view. Counting the requests that were tried on the failed cluster first matters
most for a black hole (a cluster that accepts and never answers): it answers nothing, so "answered by"
alone would give 0 ms however long requests waited on it before going elsewhere. `faultedShare` adds
the fraction of requests scheduled in the fault window that the failed cluster answered (0 after a
clean failover; a brownout the gateway does not route around keeps it high), and `faultP99Ms` the p99
latency of the requests scheduled in the fault window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

TAIL_S = 1.0
"""Traffic has left the failed cluster only if it answered nothing scheduled this close to the clear."""
RETRYABLE = frozenset({429, 503})
"""Statuses a client is told to retry (with `Retry-After`): failed, but listed apart."""


@dataclass(frozen=True)
class Sample:
    """One client request of a drill."""

    scheduled_s: float
    """When the open-loop schedule said to send it; latency is measured from here."""
    done_s: float
    """When its answer (or its failure) arrived."""
    status: int
    """HTTP status of the answer; 0 when there was none (connection error, timeout)."""
    cluster: str | None = None
    """`x-polycloud-cluster` of the answer, when the gateway named one."""
    tried: tuple[str, ...] = ()
    """`x-polycloud-tried` of the answer: clusters tried for it that did not give the answer."""

    def touched(self, cluster: str) -> bool:
        """Whether `cluster` answered this request or was tried for it."""
        return self.cluster == cluster or cluster in self.tried

    @property
    def latency_ms(self) -> float:
        """From the scheduled send time to the answer, in milliseconds."""
        return (self.done_s - self.scheduled_s) * 1000.0


@dataclass(frozen=True)
class FaultWindow:
    """Which cluster was faulted, and when the fault was injected and cleared (seconds since start)."""

    cluster: str
    fault_at_s: float
    cleared_at_s: float | None
    """None when the clearing call was never made (the drill ended first)."""
    inject_call_s: float | None = None
    """How long the injection call took to return (the fault took effect somewhere in there)."""


class Rto(NamedTuple):
    """rtoMs and, when it is null, why."""

    ms: float | None
    note: str | None = None


@dataclass(frozen=True)
class DrillReport:
    """The measured outcome of one drill; `to_json` gives the CLI's `--json` object."""

    kind: str
    cluster: str
    service: str
    rps: float
    duration_s: float
    requests: int
    failed: int
    retryable: int
    p50_ms: float | None
    p99_ms: float | None
    fault_p99_ms: float | None
    """p99 of the requests scheduled in the fault window."""
    rto_ms: float | None
    rto_note: str | None
    recovery_ms: float | None
    faulted_share: float | None
    """Fraction of the requests scheduled in the fault window that the faulted cluster answered."""
    fault_at_s: float
    cleared_at_s: float | None
    inject_call_ms: float | None
    by_cluster: dict[str, int]
    status_codes: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON, times in milliseconds rounded to 0.1 ms."""
        return {
            "kind": self.kind,
            "cluster": self.cluster,
            "service": self.service,
            "rps": self.rps,
            "durationS": self.duration_s,
            "requests": self.requests,
            "failed": self.failed,
            "retryable": self.retryable,
            "p50Ms": _round(self.p50_ms),
            "p99Ms": _round(self.p99_ms),
            "faultP99Ms": _round(self.fault_p99_ms),
            "rtoMs": _round(self.rto_ms),
            "rtoNote": self.rto_note,
            "recoveryMs": _round(self.recovery_ms),
            "faultedShare": None if self.faulted_share is None else round(self.faulted_share, 4),
            "faultAt": round(self.fault_at_s, 3),
            "clearedAt": None if self.cleared_at_s is None else round(self.cleared_at_s, 3),
            "injectCallMs": _round(self.inject_call_ms),
            "byCluster": dict(sorted(self.by_cluster.items())),
            "statusCodes": dict(sorted(self.status_codes.items())),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-th percentile (0 < q ≤ 100) of `values`; None when there are none."""
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def rto(samples: Iterable[Sample], window: FaultWindow, tail_s: float = TAIL_S) -> Rto:
    """How long requests kept touching the failed cluster after the fault, and why it is null when it
    is; see the module docstring."""
    end = window.cleared_at_s if window.cleared_at_s is not None else math.inf
    ours = [s for s in samples if s.touched(window.cluster)]
    if not any(s.scheduled_s < window.fault_at_s for s in ours):
        return Rto(None, "the cluster served no request before the fault")
    during = [s for s in ours if window.fault_at_s <= s.scheduled_s < end]
    if not during:
        return Rto(0.0)
    last_scheduled = max(s.scheduled_s for s in during)
    if math.isfinite(end):
        tail = min(tail_s, (end - window.fault_at_s) / 2)
        if last_scheduled >= end - tail:
            return Rto(None, f"requests sent in the fault's last {tail:g} s still reached the cluster")
    return Rto((max(s.done_s for s in during) - window.fault_at_s) * 1000.0)


def rto_ms(samples: Iterable[Sample], window: FaultWindow, tail_s: float = TAIL_S) -> float | None:
    """`rto(...).ms`: milliseconds, or None."""
    return rto(samples, window, tail_s).ms


def during_fault(samples: Iterable[Sample], window: FaultWindow) -> list[Sample]:
    """The samples scheduled in the fault window `[fault_at_s, cleared_at_s)`."""
    end = window.cleared_at_s if window.cleared_at_s is not None else math.inf
    return [s for s in samples if window.fault_at_s <= s.scheduled_s < end]


def faulted_share(samples: Iterable[Sample], window: FaultWindow) -> float | None:
    """Fraction of the requests scheduled in the fault window that the faulted cluster answered."""
    during = during_fault(samples, window)
    if not during:
        return None
    return sum(1 for s in during if s.cluster == window.cluster) / len(during)


def recovery_ms(samples: Iterable[Sample], window: FaultWindow) -> float | None:
    """How long after the clear the failed cluster served again; see the module docstring."""
    if window.cleared_at_s is None:
        return None
    cleared = window.cleared_at_s
    back = [
        s.done_s
        for s in samples
        if s.cluster == window.cluster and s.status == 200 and s.scheduled_s >= cleared
    ]
    return (min(back) - cleared) * 1000.0 if back else None


def summarize(
    samples: Sequence[Sample], window: FaultWindow, *, kind: str, service: str, rps: float, duration_s: float
) -> DrillReport:
    """Fold a drill's samples into its report."""
    codes = Counter("error" if s.status == 0 else str(s.status) for s in samples)
    latencies = [s.latency_ms for s in samples]
    outage = rto(samples, window)
    return DrillReport(
        kind=kind,
        cluster=window.cluster,
        service=service,
        rps=rps,
        duration_s=duration_s,
        requests=len(samples),
        failed=sum(1 for s in samples if s.status != 200),
        retryable=sum(1 for s in samples if s.status in RETRYABLE),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        fault_p99_ms=percentile([s.latency_ms for s in during_fault(samples, window)], 99),
        rto_ms=outage.ms,
        rto_note=outage.note,
        recovery_ms=recovery_ms(samples, window),
        faulted_share=faulted_share(samples, window),
        fault_at_s=window.fault_at_s,
        cleared_at_s=window.cleared_at_s,
        inject_call_ms=None if window.inject_call_s is None else window.inject_call_s * 1000.0,
        by_cluster=dict(Counter(s.cluster or "none" for s in samples)),
        status_codes=dict(codes),
    )
