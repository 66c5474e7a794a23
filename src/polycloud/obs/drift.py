"""Model output drift: the population stability index of a replica group's recent predictions
against a reference window.

Replicas keep a sample of their output values (`polycloud.serving.predictions`) and serve it at
`GET /_polycloud/predictions`. For each (service, cluster, revision) the first `reference_size` values
seen become the reference; then values gathered since the last comparison are compared with it once
there are `current_size` of them (and gathering starts over). A new revision gets a new reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from polycloud.obs.detect import psi
from polycloud.state.records import ReplicaRecord

Key = tuple[str, str, int]
"""(service, cluster, revision)."""


@dataclass
class _Group:
    reference: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    """Per replica, its `total` at the last read (values kept since it started)."""


@dataclass(frozen=True)
class DriftReading:
    """One comparison."""

    service: str
    cluster: str
    revision: int
    psi: float
    reference: int
    current: int


class DriftWatch:
    """Gathers prediction samples and compares them with their reference."""

    def __init__(
        self, client: httpx.Client | None = None, *, reference_size: int = 500, current_size: int = 300
    ) -> None:
        """Read samples with `client`."""
        self._client = client or httpx.Client(timeout=3.0)
        self._groups: dict[Key, _Group] = {}
        self._reference_size = reference_size
        self._current_size = current_size

    def read(self, replicas: list[ReplicaRecord]) -> list[DriftReading]:
        """Read every ready replica's sample; the comparisons that became due."""
        live: set[Key] = set()
        for r in replicas:
            if r.state != "ready" or not r.endpoint:
                continue
            key = (r.workload, r.cluster, r.revision)
            live.add(key)
            try:
                answer = self._client.get(f"{r.endpoint.rstrip('/')}/_polycloud/predictions")
                answer.raise_for_status()
                body = answer.json()
                values, total = [float(v) for v in body["values"]], int(body["total"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
            self._take(self._groups.setdefault(key, _Group()), r.id, values, total)
        for gone in set(self._groups) - live:
            del self._groups[gone]
        return [reading for key in sorted(live) if (reading := self._compare(key)) is not None]

    def _take(self, group: _Group, replica: str, values: list[float], total: int) -> None:
        before = group.seen.get(replica, 0)
        new = total - before if total >= before else total  # a restarted replica counts from 0 again
        fresh = values[len(values) - min(new, len(values)) :]
        group.seen[replica] = total
        room = self._reference_size - len(group.reference)
        group.reference.extend(fresh[:room] if room > 0 else [])
        group.current.extend(fresh[max(room, 0) :])

    def _compare(self, key: Key) -> DriftReading | None:
        group = self._groups.get(key)
        if group is None or len(group.reference) < self._reference_size:
            return None
        if len(group.current) < self._current_size:
            return None
        current, group.current = group.current, []
        return DriftReading(
            key[0], key[1], key[2], psi(group.reference, current), len(group.reference), len(current)
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
