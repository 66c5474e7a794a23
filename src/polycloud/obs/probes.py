"""Synthetic probes: a real inference per (service, cluster) at a fixed interval, kept as its own SLI.

A probe reads the model's metadata from a ready replica of the cluster (cached per service and
revision), builds a request that fits its inputs (each dynamic dimension 1, values 0, or "" for
BYTES), and sends it straight to that replica, so that a cluster that carries no traffic is still
known to work. Outcomes go into the `probe` SLI series; a failure is any answer but 200.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from polycloud.state.records import ReplicaRecord

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ProbeResult:
    """One probe of one (service, cluster)."""

    service: str
    cluster: str
    replica: str
    ok: bool
    ms: float
    detail: str
    """Why it failed ("" when it did not)."""


def fitting_request(metadata: dict[str, Any]) -> dict[str, Any]:
    """An inference request that fits the model's inputs (OIP v2 metadata).

    Raises:
        ValueError: The metadata has no inputs, or an input without a name, datatype or shape.
    """
    inputs = metadata.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValueError("the model's metadata lists no inputs")
    tensors = []
    for spec in inputs:
        name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
            raise ValueError(f"input {spec!r} needs a name, a datatype and a shape")
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
        size = math.prod(dims)
        value: object = "" if datatype == "BYTES" else (False if datatype == "BOOL" else 0)
        tensors.append({"name": name, "shape": dims, "datatype": datatype, "data": [value] * size})
    return {"inputs": tensors}


class Prober:
    """Probes (service, cluster) pairs through one HTTP client."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        """Probe with `client` (a fresh one by default)."""
        self._client = client or httpx.Client(timeout=PROBE_TIMEOUT_S)
        self._requests: dict[tuple[str, int], dict[str, Any]] = {}

    def targets(self, replicas: list[ReplicaRecord]) -> list[ReplicaRecord]:
        """One ready replica with an endpoint per (service, cluster), the first by id."""
        chosen: dict[tuple[str, str], ReplicaRecord] = {}
        for r in sorted(replicas, key=lambda r: r.id):
            if r.state == "ready" and r.endpoint and (r.workload, r.cluster) not in chosen:
                chosen[(r.workload, r.cluster)] = r
        return [chosen[key] for key in sorted(chosen)]

    def probe(self, replica: ReplicaRecord) -> ProbeResult:
        """One real inference on `replica`."""
        base = f"{(replica.endpoint or '').rstrip('/')}/v2/models/{replica.workload}"
        start = time.perf_counter()
        try:
            body = self._request_for(replica, base)
            answer = self._client.post(f"{base}/infer", json=body, headers={"x-request-id": uuid.uuid4().hex})
            ok, detail = (
                answer.status_code == 200,
                "" if answer.status_code == 200 else f"HTTP {answer.status_code}",
            )
        except (httpx.HTTPError, ValueError) as e:
            ok, detail = False, f"{type(e).__name__}: {e}"
        ms = (time.perf_counter() - start) * 1000.0
        return ProbeResult(replica.workload, replica.cluster, replica.id, ok, ms, detail)

    def _request_for(self, replica: ReplicaRecord, base: str) -> dict[str, Any]:
        key = (replica.workload, replica.revision)
        request = self._requests.get(key)
        if request is None:
            answer = self._client.get(base)
            answer.raise_for_status()
            request = self._requests[key] = fitting_request(answer.json())
        return request

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
