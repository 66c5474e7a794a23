"""Managed training jobs as a user drives them: apply, drill preempt, jobs status/logs/cancel, down."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Fleet, Polycloud

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[1] / "controller" / "train_sgd.py"


def job_doc(name: str, control: Path, steps: int) -> dict[str, Any]:
    return {
        "apiVersion": "polycloud/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "resources": {"vcpus": 1},
            "hours": 1,
            # relative to the spec file's folder: the test copies the script there
            "command": [
                "python",
                "train_sgd.py",
                "--steps",
                str(steps),
                "--every",
                "5",
                "--control",
                str(control),
            ],
            "checkpoint": {"everySeconds": 10},
            "recovery": {"strategy": "next-cheapest", "maxRestarts": 2},
        },
    }


def api_jobs(polycloud: Polycloud) -> dict[str, dict[str, Any]]:
    """`GET /api/v1/jobs` (what `jobs status --json` prints, without a CLI start per poll)."""
    response = polycloud.api().get("/jobs")
    response.raise_for_status()
    return {j["name"]: j for j in response.json()["jobs"]}


def test_preempted_jobs_resume_on_the_next_cheapest_cluster_and_cancelled_ones_stop(
    polycloud: Polycloud, fleet: Fleet
) -> None:
    controls = {name: fleet.root / f"control-{name}" for name in ("train", "idle")}
    for path in controls.values():
        path.mkdir()
    (controls["train"] / "pause-a1-at-12").touch()
    (controls["idle"] / "pause-a1-at-3").touch()
    shutil.copy(SCRIPT, fleet.root / "train_sgd.py")
    bare = fleet.without("alpha").without("beta")
    docs = [*bare.documents(), job_doc("train", controls["train"], 30), job_doc("idle", controls["idle"], 30)]
    spec = fleet.root / "jobs.yaml"
    spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))

    polycloud.ok("apply", spec, "--yes")
    polycloud.eventually(lambda: (controls["train"] / "paused-a1-12").exists(), "train to reach step 12")
    polycloud.eventually(lambda: (controls["idle"] / "paused-a1-3").exists(), "idle to reach step 3")
    preempted = polycloud.ok("drill", "preempt", "train", "--grace", "30")
    assert "preempted on acme" in preempted.stdout
    polycloud.ok("jobs", "cancel", "idle")

    def settled() -> bool:
        found = api_jobs(polycloud)
        return found["train"]["state"] == "succeeded" and bool(found["idle"]["attempts"][-1]["endedAt"])

    polycloud.eventually(settled, "train to succeed and idle to stop")
    data = json.loads(polycloud.ok("jobs", "status", "--json").stdout)
    found = {j["name"]: j for j in data["jobs"]}
    train, idle = found["train"], found["idle"]
    assert [(a["cluster"], a["state"]) for a in train["attempts"]] == [
        ("acme", "preempted"),
        ("borealis", "succeeded"),
    ]
    assert train["cluster"] == "borealis" and train["checkpointBytesMoved"] > 0 and train["costUSD"] > 0
    assert all(a["pid"] and a["startedAt"] and a["endedAt"] for a in train["attempts"])
    assert idle["state"] == "cancelled" and [a["state"] for a in idle["attempts"]] == ["cancelled"]
    logs = polycloud.ok("jobs", "logs", "train", "--tail", "0").stdout
    assert "SIGTERM at step 12: checkpointed" in logs and "attempt 2: resuming at step 12" in logs
    human = polycloud.ok("jobs", "status").stdout
    assert "borealis succeeded" in human and "cancelled" in human

    rc, out, err = polycloud.cli("jobs", "cancel", "nope")
    assert rc == 1 and "'nope'" in err and "Traceback" not in out + err
    rc, out, err = polycloud.cli("drill", "preempt", "train")
    assert rc == 1 and "not running" in err
