"""`polycloud plan`, `validate` and `schema` as a user runs them: exit codes, JSON shape, error format."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from polycloud.cli.main import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "fleet"

PLACEMENT_KEYS = {
    "workload",
    "kind",
    "pattern",
    "assignments",
    "computeUSD",
    "egressUSD",
    "totalUSD",
    "explanation",
}
ASSIGNMENT_KEYS = {"cluster", "role", "replicas", "instanceType", "hourlyUSD", "spot"}

SITE = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: site-a}
spec:
  provider: onprem
  region: lisbon
  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}
  quotas: {T4: 1}
  instances:
    - {name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}
    - {name: t4-node, accelerator: T4, acceleratorCount: 1, vcpus: 8, memoryGiB: 32, hourlyUSD: 0.4}
"""
SERVICE = """\
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: api}
spec:
  model: {uri: "s3://models/api.onnx"}
  resources: {vcpus: 2, memoryGiB: 4}
"""
H100_JOB = """\
---
apiVersion: polycloud/v1
kind: Job
metadata: {name: giant}
spec:
  resources: {accelerator: H100, acceleratorCount: 8}
  hours: 3
"""
T4_JOBS = "".join(
    f"---\napiVersion: polycloud/v1\nkind: Job\nmetadata: {{name: {name}}}\n"
    f"spec: {{resources: {{accelerator: T4}}, hours: {hours}}}\n"
    for name, hours in (("short", 1), ("long", 5))
)

runner = CliRunner()


def write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def plan_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["plan", *args, "--json"])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def check_shape(plan: dict[str, Any]) -> None:
    """The `plan --json` object of DESIGN.md §4."""
    assert {"placements", "infeasible", "totalUSD"} <= set(plan)
    for p in plan["placements"]:
        assert set(p) >= PLACEMENT_KEYS
        assert p["kind"] in ("Service", "Job")
        assert p["assignments"] and all(set(a) >= ASSIGNMENT_KEYS for a in p["assignments"])
        assert abs(p["totalUSD"] - (p["computeUSD"] + p["egressUSD"])) < 1e-5
    for item in plan["infeasible"]:
        assert set(item) >= {"workload", "kind", "reasons"} and item["reasons"]
    assert abs(plan["totalUSD"] - sum(p["totalUSD"] for p in plan["placements"])) < 1e-5


# -- plan ---------------------------------------------------------------------------------------------


def test_plan_example_fleet_json_exits_0() -> None:
    code, plan = plan_json(str(EXAMPLES))
    assert code == 0
    check_shape(plan)
    assert {p["workload"] for p in plan["placements"]} == {
        "diagnosis",
        "species",
        "species-batch",
        "triage",
        "train-diagnosis",
        "pretrain-botany",
    }
    assert plan["infeasible"] == []
    job = next(p for p in plan["placements"] if p["workload"] == "pretrain-botany")
    assert [(a["role"], a["replicas"]) for a in job["assignments"]] == [("active", 2)]


def test_plan_table_shows_totals_and_baseline() -> None:
    result = runner.invoke(app, ["plan", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "Placement plan" in result.stdout and "Total:" in result.stdout
    assert "Naive baseline" in result.stdout and "saving" in result.stdout


def test_plan_with_an_infeasible_workload_exits_2_and_still_prints_the_plan(tmp_path: Path) -> None:
    code, plan = plan_json(str(write(tmp_path, SITE + SERVICE + H100_JOB)))
    assert code == 2
    check_shape(plan)
    assert [p["workload"] for p in plan["placements"]] == ["api"]
    (item,) = plan["infeasible"]
    assert item["workload"] == "giant" and item["kind"] == "Job"
    assert any("no offering with H100 x8" in r for r in item["reasons"])


def test_plan_infeasible_table_lists_reasons(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(write(tmp_path, SITE + SERVICE + H100_JOB))])
    assert result.exit_code == 2
    assert "cannot place Job giant" in result.stdout


def test_plan_of_invalid_input_exits_1_with_file_line_col(tmp_path: Path) -> None:
    path = write(tmp_path, SITE + SERVICE.replace("memoryGiB: 4", "memoryGiB: -4"))
    result = runner.invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert re.search(
        rf"^{re.escape(str(path))}:18:36: spec\.resources\.memoryGiB: .*greater than", result.stderr, re.M
    )


def test_plan_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "cannot read file" in result.stderr


# -- validate -----------------------------------------------------------------------------------------


def test_validate_example_fleet() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "valid: 4 clusters, 2 datasets, 4 services, 2 jobs, 0 policies" in result.stdout


def test_validate_reports_every_error_as_file_line_col(tmp_path: Path) -> None:
    text = (
        SITE
        + SERVICE.replace("  resources:", "  replicaz: 2\n  resources:")
        + (
            "---\napiVersion: polycloud/v1\nkind: Dataset\nmetadata: {name: data}\n"
            "spec: {cluster: site-b, sizeGB: 1}\n"
        )
    )
    path = write(tmp_path, text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: [\w.\[\]]+: .+", line), line
    assert f"{path}:18:3: spec.replicaz: unknown field 'replicaz' (did you mean 'replicas'?)" in lines
    assert any("spec.cluster: unknown cluster 'site-b' (did you mean 'site-a'?)" in line for line in lines)


def test_validate_reports_broken_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: [unclosed\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:2:1: invalid YAML")


# -- schema -------------------------------------------------------------------------------------------


def test_schema_writes_a_json_schema_file(tmp_path: Path) -> None:
    target = tmp_path / "polycloud.schema.json"
    result = runner.invoke(app, ["schema", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout.replace("\n", "")
    schema = json.loads(target.read_text())
    assert schema["$schema"].startswith("https://json-schema.org/")
    text = json.dumps(schema)
    for kind in ("Cluster", "Dataset", "Service", "Job", "Policy"):
        assert f'"const": "{kind}"' in text or f'"{kind}"' in text
    assert "burstHoursPerMonth" in text and "maxRttMs" in text


def test_schema_to_stdout_is_json() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "polycloud spec v1 document"


# -- a real process -------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m polycloud.cli.main ARGS` in a fresh interpreter, as the installed command runs."""
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "polycloud.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )


def test_real_process_plans_the_example_fleet() -> None:
    proc = run_cli("plan", "examples/fleet", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    check_shape(plan)
    assert plan == plan_json(str(EXAMPLES))[1]


def test_real_process_json_stays_pure_when_quotas_bind(tmp_path: Path) -> None:
    """Two T4 jobs want site-a's one T4 (else aws): the MILP runs; stdout must still be one JSON object.

    Regression: HiGHS prints a banner ("Running HiGHS ...") on file descriptor 1 the first time a
    `highspy.Highs()` is built in a process; only a fresh process shows it.
    """
    aws = "---\napiVersion: polycloud/v1\nkind: Cluster\nmetadata: {name: aws}\n"
    aws += "spec: {provider: aws, region: us-east-1}\n"
    path = write(tmp_path, SITE + aws + T4_JOBS)
    proc = run_cli("plan", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("{"), proc.stdout.splitlines()[:2]
    plan = json.loads(proc.stdout)
    where = {p["workload"]: p["assignments"][0]["cluster"] for p in plan["placements"]}
    assert where == {"long": "site-a", "short": "aws"}  # $0.40 vs $0.526/h: the longer run saves more
