"""`scripts/build_catalog.py`: the shipped data is what the script derives, and bad input is refused.

The sources are rebuilt from the package data itself (no access to the shared folder at test time).
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from polycloud.catalog.loading import read_data

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_catalog.py"
LATENCY_SOURCE = "skyplane-project/skyplane:profiles/latency.csv@945dca27"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_catalog", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_catalog"] = module
    spec.loader.exec_module(module)
    return module


def make_source(folder: Path) -> Path:
    """A shared-catalog folder equivalent to the one the package data was built from."""
    folder.mkdir()
    for name in ("aws_vms.csv", "gcp_vms.csv", "azure_vms.csv", "regions.csv"):
        (folder / name).write_text(read_data(name), encoding="utf-8")
    (folder / "network.csv").write_text(read_data("network_published.csv"), encoding="utf-8")
    (folder / "README.md").write_text(read_data("SOURCES.md"), encoding="utf-8")
    rows = list(csv.reader(read_data("latency_ms.csv").splitlines()))
    with (folder / "latency_ms.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*rows[0], "source"])
        writer.writerows([*row, LATENCY_SOURCE] for row in rows[1:])
    return folder


def test_shipped_data_is_what_the_script_builds(script: ModuleType, tmp_path: Path) -> None:
    source = make_source(tmp_path / "shared")
    target = tmp_path / "data"
    written = script.build(source, target)
    assert "network.csv" in written and "latency_ms.csv" in written
    for name in written:
        assert (target / name).read_text(encoding="utf-8") == read_data(name), name


def test_missing_region_is_refused(script: ModuleType, tmp_path: Path) -> None:
    source = make_source(tmp_path / "shared")
    lines = (source / "regions.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (source / "regions.csv").write_text("".join(line for line in lines if ",eastus," not in line))
    assert script.main([str(source), "--target", str(tmp_path / "out")]) == 1


def test_unreadable_scope_is_refused(script: ModuleType, tmp_path: Path) -> None:
    source = make_source(tmp_path / "shared")
    with (source / "network.csv").open("a", encoding="utf-8") as f:
        f.write("aws,internet_egress_first_10TB,0.5,from the moon,made up\n")
    with pytest.raises(script.BuildError, match="from the moon"):
        script.build(source, tmp_path / "out")


def test_scope_rules(script: ModuleType) -> None:
    rules = [
        script.PriceRule("aws", "internet_egress_first_10TB", 0.09, True, frozenset(), frozenset()),
        script.PriceRule(
            "aws", "internet_egress_first_10TB", 0.15, False, frozenset({"sa-east-1"}), frozenset()
        ),
        script.PriceRule("aws", "inter_region_same_continent", 0.02, True, frozenset(), frozenset()),
        script.PriceRule("aws", "inter_region_same_continent", 0.05, False, frozenset(), frozenset({"Asia"})),
        script.PriceRule(
            "aws", "inter_region_intercontinental", 0.138, False, frozenset({"sa-east-1"}), frozenset()
        ),
        script.PriceRule(
            "aws", "inter_region_intercontinental", 0.3, False, frozenset(), frozenset({"Europe"})
        ),
    ]
    kinds = ("inter_region_same_continent", "inter_region_intercontinental")
    assert script.pick(rules, ("internet_egress_first_10TB",), "sa-east-1", "South America")[0] == 0.15
    assert script.pick(rules, ("internet_egress_first_10TB",), "us-east-1", "North America")[0] == 0.09
    assert script.pick(rules, kinds, "sa-east-1", "South America")[0] == 0.138
    assert script.pick(rules, kinds, "ap-south-1", "Asia")[0] == 0.05
    assert (
        script.pick(rules, kinds, "eu-west-1", "Europe")[0] == 0.02
    )  # intercontinental by continent: unused


def test_script_copies_verbatim(script: ModuleType, tmp_path: Path) -> None:
    source = make_source(tmp_path / "shared")
    target = tmp_path / "data"
    script.build(source, target)
    assert (target / "SOURCES.md").read_text(encoding="utf-8") == (source / "README.md").read_text(
        encoding="utf-8"
    )
    assert not (target / "README.md").exists()  # the hand-written README is not the script's
