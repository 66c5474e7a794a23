"""Helpers for driver tests: a tiny ONNX model, polling with a deadline, one inference call."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
from tests.support import wait_until

from polycloud.drivers.base import ReplicaSpec, ReplicaStatus
from polycloud.drivers.local import LocalDriver
from polycloud.pki import workload as wl

T = TypeVar("T")


def status_of(driver: LocalDriver, replica_id: str) -> ReplicaStatus | None:
    """The listed status of one replica, or None."""
    return next((s for s in driver.list_replicas() if s.id == replica_id), None)


def wait_state(driver: LocalDriver, replica_id: str, state: str, timeout_s: float = 30.0) -> ReplicaStatus:
    """Wait until `replica_id` is listed in `state` and return that status."""

    def check() -> ReplicaStatus | None:
        status = status_of(driver, replica_id)
        return status if status is not None and status.state == state else None

    return wait_until(check, timeout_s, f"{replica_id} to be {state}")


def home_processes(home: Path) -> list[psutil.Process]:
    """Every live process whose command line mentions `home` (zombies excluded)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("status") != psutil.STATUS_ZOMBIE and str(home) in cmdline:
            found.append(proc)
    return found


def infer(endpoint: str, service: str, timeout_s: float = 10.0) -> httpx.Response:
    """POST one inference request of X = [[1, 2, 3, 4]]."""
    body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
    return httpx.post(f"{endpoint}/v2/models/{service}/infer", json=body, timeout=timeout_s, trust_env=False)


def make_spec(
    model: Path,
    replica_id: str = "svc-a-0",
    cluster: str = "local-a",
    *,
    env: dict[str, str] | None = None,
    delay_ms: float = 0.0,
) -> ReplicaSpec:
    """A replica spec of service `svc` serving `model`."""
    return ReplicaSpec(
        id=replica_id,
        service="svc",
        cluster=cluster,
        revision=1,
        role="active",
        spec_hash="h1",
        model_path=str(model),
        env=env or {},
        delay_ms=delay_ms,
    )


def fake_python(folder: Path, *, ignore_sigterm: bool) -> str:
    """An "interpreter" whose replicas only sleep: cheap stand-ins that never become ready.

    Its command line still carries `-m polycloud.serving ...`, so the driver finds it like a real
    replica; with `ignore_sigterm` it only dies by SIGKILL.
    """
    handler = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_sigterm else ""
    code = f"import signal, time; {handler}time.sleep(120)"
    script = folder / ("stubborn-python" if ignore_sigterm else "sleepy-python")
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{code}" "$@"\n')
    script.chmod(0o755)
    return str(script)


class Signer:
    """A workload issuer (`WorkloadTokens`) with one real key; its tokens were issued `age_s` ago."""

    def __init__(self) -> None:
        self.key = wl.new_key(1, 0)
        self.age_s = 0.0
        self.asked: list[tuple[str, str, int, str]] = []

    def token(self, kind: wl.Kind, name: str, revision: int, cluster: str) -> str:
        self.asked.append((kind, name, revision, cluster))
        who = wl.Workload("risk", kind, name, cluster, "acme", "dc1")
        return wl.sign(self.key, wl.claims(who, "https://id.example.com", time.time() - self.age_s, 3600))
