"""Client load for failure tests: requests through one or more gateways, every one counted.

`ClientLoad` runs `clients` threads, each sending inference requests round-robin over the gateways
(closed loop: a client sends its next request when the last one answered), and keeps every outcome —
time, gateway, status, latency, serving cluster, error — so a test can say exactly how many requests
failed and how slow they were around a failure it injected.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx

IRIS_SAMPLE = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}


@dataclass(frozen=True)
class Outcome:
    """One request: when it started (monotonic), where it went, how it ended."""

    started: float
    gateway: str
    status: int
    """The HTTP status, or 0 when no answer came (connection refused, timeout)."""
    latency_s: float
    cluster: str
    error: str = ""


class ClientLoad:
    """Closed-loop clients sending inference requests through gateways until `stop()`."""

    def __init__(
        self,
        gateways: list[str],
        service: str,
        *,
        clients: int = 4,
        timeout_s: float = 30.0,
        pace_s: float = 0.0,
    ) -> None:
        self.gateways = gateways
        self.path = f"/v2/models/{service}/infer"
        self.timeout_s = timeout_s
        self.pace_s = pace_s
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]

    def __enter__(self) -> ClientLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def _client(self, index: int) -> None:
        body = {"inputs": [IRIS_SAMPLE]}
        clients = {
            g: httpx.Client(base_url=g, timeout=self.timeout_s, trust_env=False) for g in self.gateways
        }
        sent = index
        try:
            while not self._halt.is_set():
                gateway = self.gateways[sent % len(self.gateways)]
                sent += 1
                started = time.monotonic()
                try:
                    answer = clients[gateway].post(self.path, json=body)
                    outcome = Outcome(
                        started,
                        gateway,
                        answer.status_code,
                        time.monotonic() - started,
                        answer.headers.get("x-polycloud-cluster", ""),
                        "" if answer.status_code == 200 else answer.text[:200],
                    )
                except httpx.HTTPError as e:
                    outcome = Outcome(started, gateway, 0, time.monotonic() - started, "", repr(e))
                with self._lock:
                    self.outcomes.append(outcome)
                if self.pace_s:
                    self._halt.wait(self.pace_s)
        finally:
            for client in clients.values():
                client.close()

    # -- reading the results ------------------------------------------------------------------
    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def failures(self, since: float = 0.0) -> list[Outcome]:
        """Requests started at or after `since` that did not answer 200."""
        return [o for o in self.snapshot() if o.started >= since and o.status != 200]

    def wait_for(self, more: int, timeout_s: float = 60.0) -> None:
        """Wait until `more` requests beyond the current count have ended."""
        target = self.count() + more
        deadline = time.monotonic() + timeout_s
        while self.count() < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"load stalled: {self.count()} of {target} requests after {timeout_s} s")
            time.sleep(0.02)

    def describe_failures(self, since: float = 0.0) -> str:
        failed = self.failures(since)
        head = "; ".join(f"{o.gateway} {o.status} {o.error}" for o in failed[:5])
        return f"{len(failed)} of {len(self.snapshot())} requests failed: {head}"


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]
