"""Desired state from recorded workloads: keyed environment digests and canary groups beside the baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polycloud.controller.desired import Canary, desired_state, fingerprint_key
from polycloud.state import WorkloadState


def service(number: int, env: dict[str, str], replicas: int = 4) -> WorkloadState:
    spec: dict[str, Any] = {
        "apiVersion": "polycloud/v1",
        "kind": "Service",
        "metadata": {"name": "svc"},
        "spec": {
            "model": {"path": "/m.onnx"},
            "resources": {"vcpus": 1, "memoryGiB": 1},
            "replicas": replicas,
            "env": [{"name": k, "secret": v} for k, v in env.items()],
        },
    }
    placement = [{"cluster": "c1", "role": "active", "replicas": replicas}]
    return WorkloadState("svc", "Service", number, spec, placement, "h", None, datetime.now(UTC))


SECRETS = {"token": "hunter2", "other": "swordfish"}


def lookup(name: str, project: str | None) -> str | None:
    return SECRETS.get(name)


def template_hash(workload: WorkloadState, key: bytes) -> str:
    state = desired_state([workload], {"c1": 0.0}, secrets=lookup, env_key=key)
    return state.groups[("svc", "c1")].template.spec_hash


def test_environment_digests_depend_on_the_key_so_secrets_cannot_be_guessed_from_them() -> None:
    workload = service(1, {"TOKEN": "token"})
    assert template_hash(workload, b"k1") == template_hash(workload, b"k1")
    assert template_hash(workload, b"k1") != template_hash(workload, b"k2")
    assert template_hash(workload, b"k1") != template_hash(service(1, {"TOKEN": "other"}), b"k1")


def test_the_key_is_made_once_per_home_and_kept_private(tmp_path: Path) -> None:
    key = fingerprint_key(tmp_path)
    assert len(key) == 32 and fingerprint_key(tmp_path) == key
    assert (tmp_path / "fingerprint.key").stat().st_mode & 0o777 == 0o600


def test_a_canary_runs_beside_the_full_baseline_sized_to_its_share() -> None:
    old, new = service(1, {"TOKEN": "token"}), service(2, {"TOKEN": "other"})
    state = desired_state([new], {"c1": 0.0}, secrets=lookup, canaries={"svc": Canary(old, 25)})
    baseline, canary = state.groups[("svc", "c1")], state.canaries[("svc", "c1")]
    assert (baseline.count, baseline.template.revision) == (4, 1)
    assert (canary.count, canary.template.revision) == (1, 2)
    same = desired_state(
        [service(2, {"TOKEN": "token"})], {"c1": 0.0}, secrets=lookup, canaries={"svc": Canary(old, 25)}
    )
    assert not same.canaries  # nothing differs: the baseline's replicas serve both revisions
