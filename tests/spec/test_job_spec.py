"""The runtime fields of a Job: command (scripts next to the spec file), env, checkpoint, recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycloud.catalog import load_catalog
from polycloud.errors import SpecError
from polycloud.spec import load_fleet

CLUSTER = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: site-a}
spec:
  provider: acme
  region: lisbon
  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12, spotHourlyUSD: 0.04}]
---
"""

JOB = """\
apiVersion: polycloud/v1
kind: Job
metadata: {name: train}
spec:
  hours: 2
  spot: true
  command: [python, scripts/train.py, --data, data.csv, --steps, "100"]
  env:
    - {name: SEED, value: "7"}
    - {name: WANDB_KEY, secret: wandb}
  checkpoint: {everySeconds: 30}
  recovery: {strategy: next-cheapest, maxRestarts: 5}
"""


def test_relative_scripts_become_absolute_and_the_rest_stays(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train.py").write_text("print('hi')\n")
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(CLUSTER + JOB)

    job = load_fleet([spec_file], load_catalog()).jobs["train"].spec

    script = str((tmp_path / "scripts" / "train.py").resolve())
    assert job.command == [
        "python",
        script,
        "--data",
        "data.csv",
        "--steps",
        "100",
    ]  # data.csv does not exist
    assert [(e.name, e.value, e.secret) for e in job.env] == [
        ("SEED", "7", None),
        ("WANDB_KEY", None, "wandb"),
    ]
    assert job.checkpoint is not None and job.checkpoint.everySeconds == 30
    assert (job.recovery.strategy, job.recovery.maxRestarts) == ("next-cheapest", 5)


def test_defaults_keep_a_job_plan_only(tmp_path: Path) -> None:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(CLUSTER + JOB.split("  command:")[0])
    job = load_fleet([spec_file], load_catalog()).jobs["train"].spec
    assert job.command is None and job.checkpoint is None
    assert (job.recovery.strategy, job.recovery.maxRestarts) == ("same-cluster", 3)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            "recovery: {strategy: anywhere}",
            "spec.recovery.strategy: Input should be 'same-cluster' or 'next-cheapest'",
        ),
        (
            "recovery: {maxRestarts: -1}",
            "spec.recovery.maxRestarts: Input should be greater than or equal to 0",
        ),
        ("checkpoint: {everySeconds: 0}", "spec.checkpoint.everySeconds: Input should be greater than 0"),
        ("command: []", "spec.command: List should have at least 1 item"),
        ("checkpoint: {everySecond: 5}", "unknown field 'everySecond' (did you mean 'everySeconds'?)"),
    ],
)
def test_bad_runtime_fields_name_file_line_and_field(tmp_path: Path, bad: str, expected: str) -> None:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(CLUSTER + JOB.split("  command:")[0] + f"  {bad}\n")
    with pytest.raises(SpecError) as caught:
        load_fleet([spec_file], load_catalog())
    (issue,) = [str(i) for i in caught.value.issues]
    assert issue.startswith(f"{spec_file}:16:") and expected in issue
