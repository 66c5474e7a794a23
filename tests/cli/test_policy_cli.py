"""`polycloud policy check`, and policies at `validate` and `plan`, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from polycloud.cli.common import EXIT_VIOLATION, friendly
from polycloud.cli.main import app
from polycloud.policy import PolicyViolationError, Violation

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [str(REPO / "examples" / "fleet"), str(REPO / "examples" / "policies")]

FLEET = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: site-a}
spec:
  provider: onprem
  region: lisbon
  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: api, labels: {team: web}}
spec:
  model: {uri: "s3://models/api.onnx"}
  resources: {vcpus: 2, memoryGiB: 4}
---
apiVersion: polycloud/v1
kind: Policy
metadata: {name: org}
spec:
  RULES
"""

runner = CliRunner()


def write(tmp_path: Path, rules: str) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace("RULES", rules))
    return str(path)


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["policy", "check", "--help"])
    assert result.exit_code == 0
    assert "Example: polycloud policy check" in result.stdout


def test_the_example_policies_hold_for_the_example_fleet() -> None:
    result = runner.invoke(app, ["policy", "check", *EXAMPLES])
    assert result.exit_code == 0, result.output
    assert "no violations" in result.stdout


def test_a_violation_exits_2_with_file_line_and_remedy(tmp_path: Path) -> None:
    path = write(tmp_path, "requiredLabels: [team, env]")
    result = runner.invoke(app, ["policy", "check", path])
    assert result.exit_code == 2
    assert f"{path}:12:" in result.stdout
    assert "Service api: lacks label env" in result.stdout
    assert "remedy: add label env to metadata.labels" in result.stdout
    assert "Traceback" not in result.output


def test_json_lists_violations_and_notes(tmp_path: Path) -> None:
    path = write(tmp_path, "{requiredLabels: [env], requiredSecrets: [hf]}")
    result = runner.invoke(app, ["policy", "check", path, "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    (v,) = report["violations"]
    assert (v["policy"], v["rule"], v["document"], v["field"], v["line"]) == (
        "org",
        "requiredLabels[0]",
        "api",
        "metadata.labels",
        12,
    )
    assert [n["rule"] for n in report["notes"]] == ["requiredSecrets"]


def test_validate_lists_violations_of_rules_that_need_no_plan(tmp_path: Path) -> None:
    labels = runner.invoke(app, ["validate", write(tmp_path, "requiredLabels: [env]")])
    assert labels.exit_code == 0, labels.output  # validate judges form; policy check gates
    assert "valid: " in labels.stdout and "lacks label env" in labels.stdout
    rules = "budgets: [{label: team, value: web, maxMonthlyUSD: 0}]"
    budget = runner.invoke(app, ["validate", write(tmp_path, rules)])
    assert budget.exit_code == 0 and "violation" not in budget.stdout  # budgets need a plan
    assert runner.invoke(app, ["plan", write(tmp_path, rules)]).exit_code == 2


def test_plan_json_adds_the_policy_key_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, "budgets: [{label: team, value: web, maxMonthlyUSD: 1}]")
    result = runner.invoke(app, ["plan", path, "--json"])
    assert result.exit_code == 2
    plan = json.loads(result.stdout)
    assert {"placements", "infeasible", "totalUSD", "policy"} <= set(plan)
    assert [p["workload"] for p in plan["placements"]] == ["api"]
    (v,) = plan["policy"]["violations"]
    assert v["rule"] == "budgets[0]" and "over the budget of $1.00" in v["message"]


def test_plan_table_shows_violations(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", write(tmp_path, "requiredLabels: [env]")])
    assert result.exit_code == 2
    assert "Placement plan" in result.stdout and "policy: 1 violation(s)" in result.stdout


def test_a_clean_plan_still_exits_0_with_an_empty_policy_key() -> None:
    result = runner.invoke(app, ["plan", *EXAMPLES, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policy"] == {"violations": [], "notes": []}


def test_commands_turn_a_blocked_apply_into_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    violation = Violation(
        "org", "providers", "f.yaml:3:3", "Service", "api", "f.yaml", 9, 5, ("spec",), "pins x", "unpin x"
    )

    @friendly
    def blocked() -> None:
        raise PolicyViolationError([violation])

    with pytest.raises(typer.Exit) as caught:
        blocked()
    assert caught.value.exit_code == EXIT_VIOLATION == 2
    assert "f.yaml:9:5: spec: Service api: pins x" in capsys.readouterr().err
