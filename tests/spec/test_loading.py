"""Spec loading: valid fleets load; every bad input becomes FILE:LINE:COL: path: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycloud.catalog import load_catalog
from polycloud.errors import SpecError
from polycloud.spec import fastyaml, load_fleet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fleet"

CLUSTER = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: site-a}
spec:
  provider: acme
  region: lisbon
  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
"""


def write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> Path:
    (tmp_path / "m.onnx").write_bytes(b"x")
    path = tmp_path / name
    path.write_text(text)
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_fleet([write(tmp_path, text)], load_catalog())
    return [str(i) for i in caught.value.issues]


def test_example_fleet_loads() -> None:
    fleet = load_fleet([EXAMPLES], load_catalog())
    assert set(fleet.clusters) == {"aws-use1", "gcp-euw4", "azure-weu", "onprem-fra"}
    assert {"diagnosis", "species"} <= set(fleet.services)
    assert Path(fleet.services["species"].spec.model.path or "").is_absolute()


def test_unknown_field_names_line_and_suggests(tmp_path: Path) -> None:
    text = (
        CLUSTER + "---\napiVersion: polycloud/v1\nkind: Service\nmetadata: {name: svc}\nspec:\n"
        "  model: {path: m.onnx}\n  replicaz: 2\n"
    )
    (msg,) = errors(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'fleet.yaml'}:15:3: spec.replicaz: unknown field 'replicaz'")
    assert "did you mean 'replicas'" in msg


def test_value_error_points_at_value(tmp_path: Path) -> None:
    text = CLUSTER.replace("hourlyUSD: 0.12", "hourlyUSD: -1")
    (msg,) = errors(tmp_path, text)
    assert ":8:" in msg and "spec.instances[0].hourlyUSD" in msg and "greater than or equal to 0" in msg


def test_missing_field(tmp_path: Path) -> None:
    text = "apiVersion: polycloud/v1\nkind: Dataset\nmetadata: {name: d}\nspec:\n  cluster: x\n"
    msgs = errors(tmp_path, text)
    assert any("spec.sizeGB: required field is missing" in m for m in msgs)


def test_unknown_kind_and_yaml_syntax(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, "apiVersion: polycloud/v1\nkind: Servce\nmetadata: {name: a}\nspec: {}\n")
    assert "unknown kind 'Servce'" in msg and "did you mean 'Service'" in msg
    (msg,) = errors(tmp_path, "kind: [unclosed\n")
    assert "invalid YAML" in msg and "fleet.yaml:2:" in msg


def test_references_and_shares(tmp_path: Path) -> None:
    text = (
        CLUSTER
        + """---
apiVersion: polycloud/v1
kind: Dataset
metadata: {name: data}
spec: {cluster: site-b, sizeGB: 1}
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: svc}
spec:
  model: {path: m.onnx}
  reads: [{dataset: dat, gbPerMonth: 1}]
  traffic: [{region: aws/us-east-1, share: 0.5}, {region: aws/us-eest-1, share: 0.2}]
  placement: {clusters: [site-aa]}
"""
    )
    msgs = "\n".join(errors(tmp_path, text))
    assert "spec.cluster: unknown cluster 'site-b' (did you mean 'site-a'?)" in msgs
    assert "spec.reads[0].dataset: unknown dataset 'dat' (did you mean 'data'?)" in msgs
    assert "traffic shares sum to 0.7" in msgs
    assert "unknown region 'aws/us-eest-1' (did you mean 'aws/us-east-1'?)" in msgs
    assert "spec.placement.clusters[0]: unknown cluster 'site-aa'" in msgs


def test_duplicate_names_and_private_site_needs_location(tmp_path: Path) -> None:
    text = CLUSTER + "---\n" + CLUSTER.replace("  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}\n", "")
    msgs = "\n".join(errors(tmp_path, text))
    assert "duplicate name 'site-a' (first defined at" in msgs
    text = CLUSTER.replace("  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}\n", "")
    assert "must give location" in "\n".join(errors(tmp_path, text))


def test_catalog_region_checked(tmp_path: Path) -> None:
    text = "apiVersion: polycloud/v1\nkind: Cluster\nmetadata: {name: c}\n" + (
        "spec: {provider: aws, region: us-east-9}\n"
    )
    (msg,) = errors(tmp_path, text)
    assert "unknown aws region 'us-east-9'" in msg


def test_missing_model_file(tmp_path: Path) -> None:
    text = (
        CLUSTER + "---\napiVersion: polycloud/v1\nkind: Service\nmetadata: {name: s}\nspec:\n"
        "  model: {path: nope.onnx}\n"
    )
    (msg,) = errors(tmp_path, text)
    assert "model file not found" in msg and "spec.model.path" in msg


def test_bad_name(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, CLUSTER.replace("name: site-a", "name: Site_A"))
    assert "metadata.name" in msg and "DNS-1123" in msg


def test_directory_with_several_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CLUSTER)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(
        "apiVersion: polycloud/v1\nkind: Dataset\nmetadata: {name: d}\nspec: {cluster: site-a, sizeGB: 3}\n"
    )
    fleet = load_fleet([tmp_path], load_catalog())
    assert set(fleet.datasets) == {"d"} and set(fleet.clusters) == {"site-a"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-13-01", "cannot read '2024-13-01' as timestamp: month must be in 1..12"),
        ("0x_", "cannot read '0x_' as int: invalid literal for int() with base 16: ''"),
        ("9" * 5000, "cannot read '" + "9" * 40 + "…' as int: Exceeds the limit (4300 digits)"),
    ],
)
def test_a_value_yaml_cannot_make_is_an_error_not_a_traceback(
    tmp_path: Path, value: str, message: str
) -> None:
    """Plain scalars that look like a date or a number but are none (PyYAML raises ValueError)."""
    text = CLUSTER + f"---\nkind: Dataset\nmetadata: {{name: d, labels: {{x: 1, y: {value}}}}}\n"
    (msg,) = errors(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'fleet.yaml'}:11:39: invalid YAML: {message}")


def test_without_libyaml_every_file_is_read_the_reference_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = CLUSTER.replace("hourlyUSD: 0.12", "hourlyUSD: -1")
    with_libyaml = errors(tmp_path, text)
    monkeypatch.setattr(fastyaml, "AVAILABLE", False)
    with pytest.raises(fastyaml.Unusual):
        fastyaml.documents(text)
    assert errors(tmp_path, text) == with_libyaml
    assert load_fleet([EXAMPLES], load_catalog()).clusters.keys() == {
        "aws-use1",
        "gcp-euw4",
        "azure-weu",
        "onprem-fra",
    }
