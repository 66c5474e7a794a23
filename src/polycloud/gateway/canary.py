"""Canary support in the gateway: per-revision attempt counts, reported for the controller to judge.

Every attempt the gateway forwards is counted against the revision of the replica that took it:
attempts, failures (5xx, refused connections, timeouts) and a latency histogram. Attempts rather than
client answers, because a failed canary attempt retried on the baseline still answers the client with
200: the client is spared, and the canary is still caught. Counts are cumulative since the gateway
started; the controller judges a step on the difference between two reports. The request path only
increments integers; `rows` is read by the load reporter's worker.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from polycloud.exchange import RevisionCounts, bucket_of, empty_buckets


class _Counts:
    __slots__ = ("attempts", "buckets", "failures")

    def __init__(self) -> None:
        self.attempts = 0
        self.failures = 0
        self.buckets = empty_buckets()


class RevisionCounter:
    """Cumulative attempt counts per (service, revision); touched from the event loop only."""

    def __init__(self) -> None:
        """Start counting from zero."""
        self._counts: dict[tuple[str, int], _Counts] = {}

    def attempted(self, service: str, revision: int, ok: bool, elapsed_ms: float) -> None:
        """Count one forwarded attempt (request path: a dict lookup and three increments)."""
        if revision <= 0:
            return  # a replica the control plane has not labelled: nothing to judge it against
        counts = self._counts.get((service, revision))
        if counts is None:
            counts = self._counts[(service, revision)] = _Counts()
        counts.attempts += 1
        if not ok:
            counts.failures += 1
        counts.buckets[bucket_of(elapsed_ms)] += 1

    def rows(self) -> list[RevisionCounts]:
        """A copy of every count, for a report."""
        return [
            RevisionCounts(service, revision, c.attempts, c.failures, tuple(c.buckets))
            for (service, revision), c in sorted(self._counts.items())
        ]


@runtime_checkable
class RevisionSink(Protocol):
    """Where per-revision counts go; called from the load reporter's worker thread."""

    def report_revisions(self, gateway_id: str, rows: list[RevisionCounts]) -> None:
        """Make `rows` this gateway's whole current counts.

        Raises:
            PolycloudError: They could not be written (logged; the next report carries them anyway).
        """
