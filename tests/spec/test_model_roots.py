"""Model files must lie under the spec's folder or POLYCLOUD_MODEL_ROOTS: no `..` escape, no symlink out."""

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
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: species}
spec:
  model: {path: MODEL}
  resources: {vcpus: 1, memoryGiB: 1}
"""


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """specs/ (with models/m.onnx inside) and outside/o.onnx next to it."""
    specs, outside = tmp_path / "specs", tmp_path / "outside"
    (specs / "models").mkdir(parents=True)
    outside.mkdir()
    (specs / "models" / "m.onnx").write_bytes(b"x")
    (outside / "o.onnx").write_bytes(b"x")
    return specs, outside


def spec(specs: Path, model: str) -> Path:
    path = specs / "fleet.yaml"
    path.write_text(CLUSTER.replace("MODEL", model))
    return path


def problems(path: Path, roots: tuple[Path, ...] = ()) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_fleet([path], load_catalog(), model_roots=roots)
    return [str(i) for i in caught.value.issues]


def test_a_model_under_the_spec_folder_is_allowed(layout: tuple[Path, Path]) -> None:
    specs, _ = layout
    fleet = load_fleet([spec(specs, "models/m.onnx")], load_catalog())
    assert fleet.services["species"].spec.model.path == str(specs / "models" / "m.onnx")


@pytest.mark.parametrize("model", ["../outside/o.onnx", "models/../../outside/o.onnx", "ABSOLUTE"])
def test_a_model_outside_is_refused_with_line_and_remedy(layout: tuple[Path, Path], model: str) -> None:
    specs, outside = layout
    model = str(outside / "o.onnx") if model == "ABSOLUTE" else model
    [issue] = problems(spec(specs, model))
    assert issue.startswith(f"{specs / 'fleet.yaml'}:14:")
    assert "spec.model.path: model file" in issue
    assert "is outside the allowed folders" in issue and "POLYCLOUD_MODEL_ROOTS" in issue


def test_a_symlink_pointing_out_of_the_folder_is_refused(layout: tuple[Path, Path]) -> None:
    specs, outside = layout
    (specs / "models" / "link.onnx").symlink_to(outside / "o.onnx")
    [issue] = problems(spec(specs, "models/link.onnx"))
    assert f"(really {outside / 'o.onnx'})" in issue or str(outside / "o.onnx") in issue


def test_model_roots_allow_more_folders(layout: tuple[Path, Path]) -> None:
    specs, outside = layout
    (specs / "models" / "link.onnx").symlink_to(outside / "o.onnx")
    for model in ("../outside/o.onnx", "models/link.onnx"):
        fleet = load_fleet([spec(specs, model)], load_catalog(), model_roots=(outside,))
        assert Path(fleet.services["species"].spec.model.path or "").resolve() == outside / "o.onnx"


def test_a_prefix_of_a_root_name_is_not_inside_it(tmp_path: Path, layout: tuple[Path, Path]) -> None:
    specs, _ = layout
    sibling = tmp_path / "specs-evil"
    sibling.mkdir()
    (sibling / "e.onnx").write_bytes(b"x")
    [issue] = problems(spec(specs, "../specs-evil/e.onnx"))
    assert "outside the allowed folders" in issue
