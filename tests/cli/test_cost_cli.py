"""`polycloud cost` and `polycloud advise` output formats, against a stand-in for the API client."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from polycloud.cli import cost as cost_cli
from polycloud.cli.main import app

REPORT = {
    "rows": [
        {"key": "fraud", "computeUSD": 1.5, "egressUSD": 0.25, "totalUSD": 1.75},
        {"key": "triage", "computeUSD": 0.000004, "egressUSD": 0.0, "totalUSD": 0.000004},
    ],
    "totalUSD": 1.750004,
}
EXPORT = {
    "label": "team",
    "periodStart": "2026-11-01T00:00:00+00:00",
    "periodEnd": "2026-11-23T12:00:00+00:00",
    "rows": [
        {
            "team": "risk",
            "workload": "fraud",
            "cluster": "acme",
            "provider": "acme",
            "computeUSD": 1.5,
            "egressUSD": 0.25,
            "totalUSD": 1.75,
            "periodStart": "2026-11-01T00:00:00+00:00",
            "periodEnd": "2026-11-23T12:00:00+00:00",
        }
    ],
}
ADVICE = {
    "advice": [
        {
            "kind": "spot",
            "target": "train",
            "savingUSD": 14.0,
            "per": "run",
            "detail": "2 nodes × 10 h",
            "command": "set spec.spot: true in Job train, then: polycloud apply <your spec files> --yes",
        }
    ],
    "monthlySavingUSD": 0.0,
    "perRunSavingUSD": 14.0,
    "notes": [],
}


class FakeClient:
    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    def cost(self, by: str, since: str | None) -> dict[str, Any]:
        self.asked.append(("cost", by, str(since)))
        return REPORT

    def cost_export(self, label: str, since: str | None) -> dict[str, Any]:
        self.asked.append(("export", label, str(since)))
        return EXPORT

    def budgets(self) -> dict[str, Any]:
        return {"budgets": []}

    def advice(self) -> dict[str, Any]:
        return ADVICE

    def close(self) -> None:
        pass


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()
    monkeypatch.setattr(cost_cli, "_client", lambda: fake)
    return fake


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_is_exactly_rows_and_total(client: FakeClient) -> None:
    assert json.loads(run("cost", "--json")) == REPORT
    assert json.loads(run("cost", "--by", "team", "--since", "7d", "--format", "json")) == REPORT
    assert client.asked == [("cost", "service", "None"), ("cost", "team", "7d")]


def test_csv_and_table(client: FakeClient) -> None:
    rows = list(csv.DictReader(io.StringIO(run("cost", "--format", "csv"))))
    assert [r["key"] for r in rows] == ["fraud", "triage"] and rows[0]["totalUSD"] == "1.75"
    table = run("cost", "--by", "cluster")
    assert "$1.75" in table and "$0.000004" in table and "cluster" in table


def test_export_writes_a_chargeback_csv(client: FakeClient, tmp_path: Path) -> None:
    out = tmp_path / "chargeback.csv"
    assert "wrote 1 rows" in run("cost", "export", "--out", str(out), "--since", "30d")
    [row] = list(csv.DictReader(out.open()))
    assert (row["team"], row["workload"], row["cluster"], row["totalUSD"]) == (
        "risk",
        "fraud",
        "acme",
        "1.75",
    )
    assert row["periodStart"] == "2026-11-01T00:00:00+00:00"


def test_export_to_an_unwritable_place_is_a_clear_error(client: FakeClient, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["cost", "export", "--out", str(tmp_path / "no" / "such" / "x.csv")])
    assert result.exit_code == 1 and "cannot write" in result.output and "Traceback" not in result.output


def test_budgets_and_advice(client: FakeClient) -> None:
    assert "no budgets" in run("cost", "budgets")
    text = run("advise")
    assert "$14.00/run" in text and "spec.spot: true" in text and "total:" in text
    assert json.loads(run("advise", "--json")) == ADVICE


@pytest.mark.parametrize("command", [["cost"], ["cost", "export"], ["cost", "budgets"], ["advise"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Example: polycloud" in result.output


TOKENS = {
    "rows": [
        {
            "key": "chat",
            "promptTokens": 1_000_000,
            "completionTokens": 500_000,
            "totalTokens": 1_500_000,
            "replicaUSD": 3.0,
            "usdPerMillionTokens": 2.0,
        }
    ],
    "services": [
        {
            "team": "nlp",
            "service": "chat",
            "cluster": "aws-use1",
            "provider": "aws",
            "promptTokens": 1_000_000,
            "completionTokens": 500_000,
            "totalTokens": 1_500_000,
            "replicaUSD": 3.0,
            "usdPerMillionTokens": 2.0,
        },
        {
            "team": "nlp",
            "service": "chat",
            "cluster": "gcp-euw4",
            "provider": "gcp",
            "promptTokens": 0,
            "completionTokens": 0,
            "totalTokens": 0,
            "replicaUSD": 1.0,
            "usdPerMillionTokens": None,
        },
    ],
    "promptTokens": 1_000_000,
    "completionTokens": 500_000,
    "totalTokens": 1_500_000,
    "replicaUSD": 4.0,
    "usdPerMillionTokens": 2.666667,
}


def test_tokens_served_show_in_json_and_in_two_tables(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_tokens = {**REPORT, "tokens": TOKENS}
    monkeypatch.setattr(client, "cost", lambda by, since: with_tokens)
    assert json.loads(run("cost", "--json")) == with_tokens
    table = run("cost")
    assert "LLM tokens served" in table and "cost per 1M tokens by team, service and cluster" in table
    assert "1,500,000" in table and "$2.00" in table and "$2.67" in table
    [standby] = [line for line in table.splitlines() if "gcp-euw4" in line]
    assert standby.rstrip().endswith("-")  # no tokens there: no cost per 1M tokens
    rows = list(csv.DictReader(io.StringIO(run("cost", "--format", "csv"))))
    assert [r["key"] for r in rows] == ["fraud", "triage"]  # the CSV stays the cost rows
