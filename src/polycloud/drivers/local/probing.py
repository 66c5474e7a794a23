"""The driver's few HTTP calls to its replicas: the readiness probe and the run-time fault setting.

Both run against several replicas at once in a small thread pool, so one slow replica costs one
timeout, not one per replica. Failures are answers ("not ready", "not applied"), never exceptions.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import httpx

PROBE_TIMEOUT_S = 0.3
FAULT_TIMEOUT_S = 1.0
_MAX_WORKERS = 8

T = TypeVar("T")


@dataclass(frozen=True)
class FaultSetting:
    """The extra delay and error rate one replica should apply."""

    endpoint: str
    delay_ms: float
    error_rate: float


def new_client(tls: ssl.SSLContext | None = None) -> httpx.Client:
    """An HTTP client for replicas on this machine (proxy settings of the environment are ignored),
    presenting the server's fleet certificate when `tls` is given."""
    return httpx.Client(trust_env=False, timeout=PROBE_TIMEOUT_S, verify=tls if tls is not None else True)


def _each(items: Sequence[T], call: Callable[[T], bool]) -> list[bool]:
    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(items))) as pool:
        return list(pool.map(call, items))


def is_ready(client: httpx.Client, endpoint: str, extra_delay_ms: float = 0.0) -> bool:
    """Whether `GET {endpoint}/v2/health/ready` answers 200 in time.

    Args:
        client: HTTP client for the replicas.
        endpoint: The replica's base URL.
        extra_delay_ms: Delay the replica adds to every response (its own plus injected latency); it
            extends the probe timeout so a slowed-down replica still counts as ready.
    """
    timeout = PROBE_TIMEOUT_S + max(0.0, extra_delay_ms) / 1000.0
    try:
        return client.get(f"{endpoint}/v2/health/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def ready_flags(client: httpx.Client, targets: Sequence[tuple[str, float]]) -> list[bool]:
    """Probe every `(endpoint, extra_delay_ms)` at once; one flag per target, in order."""
    return _each(targets, lambda t: is_ready(client, *t))


def set_faults(client: httpx.Client, setting: FaultSetting) -> bool:
    """`POST /_polycloud/faults` to one replica; True when it answered 2xx."""
    body = {"delayMs": setting.delay_ms, "errorRate": setting.error_rate}
    try:
        response = client.post(f"{setting.endpoint}/_polycloud/faults", json=body, timeout=FAULT_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return response.is_success


def push_faults(client: httpx.Client, settings: Sequence[FaultSetting]) -> list[bool]:
    """Tell every replica its fault setting at once; one success flag per setting, in order."""
    return _each(settings, lambda s: set_faults(client, s))
