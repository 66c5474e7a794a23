"""Answers per inference key over one report window, for the observer's per-key anomaly detection.

`KeyGuard.guard` leaves the id of the key it admitted in the ASGI scope (`KEY_ID_SCOPE`); the proxy
hands it with every answer to a `KeyWindow`: a dict lookup and a few additions, in bounded memory
(counts, a latency sum and a fixed histogram per key, however many requests). The load reporter closes
the window every second and writes its rows from its worker thread when the sink is a `KeySink`.
Only key ids travel: never a key or its hash.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from polycloud.exchange import KeyLoad

KEY_ID_SCOPE = "polycloud.key_id"
"""The ASGI scope entry holding the id of the inference key that admitted the request."""

BUCKETS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
"""Upper bounds of the latency histogram's buckets (one more bucket holds anything slower)."""


@runtime_checkable
class KeySink(Protocol):
    """Where per-key samples go; called from the load reporter's worker thread, once per window."""

    def report_keys(self, gateway_id: str, samples: list[KeyLoad]) -> None:
        """Make `samples` this gateway's whole current per-key report (replacing its previous one).

        Raises:
            PolycloudError: The report could not be written (it is logged and dropped).
        """


@dataclass
class _KeyAnswers:
    service: str
    count: int = 0
    errors: int = 0
    sum_ms: float = 0.0
    max_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))


def histogram_p99(buckets: list[int], max_ms: float) -> float:
    """The 99th percentile (nearest rank) of a `BUCKETS_MS` histogram, as its bucket's upper bound."""
    total = sum(buckets)
    if not total:
        return 0.0
    rank = max(1, -(-99 * total // 100))
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return min(BUCKETS_MS[i], max_ms) if i < len(BUCKETS_MS) else max_ms
    return max_ms


class KeyWindow:
    """Answers per inference key since the window began."""

    def __init__(self) -> None:
        """Start an empty window."""
        self._answers: dict[int, _KeyAnswers] = {}

    def answered(self, key_id: int, service: str, code: int, seconds: float) -> None:
        """Count one answer to a request admitted by key `key_id` (request path: no I/O)."""
        answers = self._answers.get(key_id)
        if answers is None:
            answers = self._answers[key_id] = _KeyAnswers(service)
        ms = seconds * 1000.0
        answers.count += 1
        if code >= 500:
            answers.errors += 1
        answers.sum_ms += ms
        answers.max_ms = max(answers.max_ms, ms)
        answers.buckets[bisect.bisect_left(BUCKETS_MS, ms)] += 1

    def close(self, elapsed_s: float) -> list[KeyLoad]:
        """The window's samples sorted by key id; a new window begins."""
        answers, self._answers = self._answers, {}
        return [
            KeyLoad(
                key_id=key_id,
                service=a.service,
                rps=a.count / elapsed_s if elapsed_s > 0 else 0.0,
                error_rate=a.errors / a.count if a.count else 0.0,
                p99_ms=histogram_p99(a.buckets, a.max_ms),
                mean_ms=a.sum_ms / a.count if a.count else 0.0,
            )
            for key_id, a in sorted(answers.items())
        ]
