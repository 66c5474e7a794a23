"""`polycloud catalog` through Typer's test runner: table, JSON, errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from polycloud.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["catalog", "--help"], env=WIDE)
    assert result.exit_code == 0
    # Help is plain text, wrapped at the test runner's 80 columns whatever COLUMNS says.
    assert "polycloud catalog -a H100 -n 8 --jurisdiction EU" in " ".join(result.output.split())


def test_table() -> None:
    result = runner.invoke(app, ["catalog", "-a", "H100", "-n", "8", "--jurisdiction", "EU"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "p5.48xlarge" in result.output
    assert "aws/eu-north-1" in result.output
    assert "Standard_ND96isr_H100_v5" in result.output


def test_table_never_truncates_names_on_narrow_terminals() -> None:
    result = runner.invoke(app, ["catalog", "-a", "A10", "--limit", "3"], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    assert "Standard_NV6ads_A10_v5" in result.output


def test_json() -> None:
    result = runner.invoke(app, ["catalog", "-a", "h100", "-n", "8", "--jurisdiction", "eu", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and rows
    prices = [r["hourlyUSD"] for r in rows]
    assert prices == sorted(prices)
    first = rows[0]
    assert set(first) == {
        "provider", "region", "city", "country", "jurisdiction", "instanceType", "accelerator",
        "acceleratorCount", "vcpus", "memoryGiB", "hourlyUSD", "spotHourlyUSD",
    }  # fmt: skip
    assert all(r["jurisdiction"] == "EU" and r["acceleratorCount"] >= 8 for r in rows)


def test_json_all_spot_and_limit() -> None:
    args = ["catalog", "-a", "T4", "--region", "gcp/us-central1", "--all", "--spot", "--limit", "3", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 3
    spots = [r["spotHourlyUSD"] for r in rows]
    assert spots == sorted(spots) and rows[0]["instanceType"] == "n1-standard-4-t4"


def test_json_nothing_matches() -> None:
    result = runner.invoke(app, ["catalog", "-a", "H100", "-n", "64", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_vcpus_and_memory_filters() -> None:
    result = runner.invoke(app, ["catalog", "--provider", "aws", "--vcpus", "8", "--memory", "32", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(r["provider"] == "aws" and r["vcpus"] >= 8 and r["memoryGiB"] >= 32 for r in rows)


def test_unknown_region_suggests() -> None:
    result = runner.invoke(app, ["catalog", "--region", "europe-wst4"], env=WIDE)
    assert result.exit_code == 1
    assert "gcp/europe-west4" in result.stderr
    assert result.stdout == ""


def test_unknown_accelerator_and_provider() -> None:
    bad_accel = runner.invoke(app, ["catalog", "-a", "H10"], env=WIDE)
    assert bad_accel.exit_code == 1 and "H100" in bad_accel.stderr
    bad_provider = runner.invoke(app, ["catalog", "--provider", "gpc"], env=WIDE)
    assert bad_provider.exit_code == 1 and "gcp" in bad_provider.stderr
    bad_law = runner.invoke(app, ["catalog", "--jurisdiction", "XX"], env=WIDE)
    assert bad_law.exit_code == 1 and "EU" in bad_law.stderr
