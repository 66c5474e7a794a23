"""A Job's `outputs`: artifacts it writes, made absolute from the spec file's folder, names unique; and a
Policy's `derivedResidency`."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycloud.catalog import load_catalog
from polycloud.errors import SpecError
from polycloud.spec import load_fleet

JOB = """\
apiVersion: polycloud/v1
kind: Job
metadata: {name: train}
spec:
  hours: 1
"""
POLICY = "apiVersion: polycloud/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"


def test_output_paths_become_absolute_from_the_spec_folder(tmp_path: Path) -> None:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(JOB + "  outputs: [{name: model, path: models/m.onnx}, {name: log, path: /tmp/x}]\n")
    outputs = load_fleet([spec_file], load_catalog()).jobs["train"].spec.outputs
    assert [(o.name, o.path) for o in outputs] == [
        ("model", str((tmp_path / "models" / "m.onnx").resolve())),  # need not exist yet
        ("log", "/tmp/x"),
    ]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("outputs: [{name: m, path: a}, {name: m, path: b}]", "spec.outputs: output names must be unique: m"),
        ("outputs: [{name: Model, path: a}]", "spec.outputs[0].name: 'Model' is not a DNS-1123 label"),
        ("outputs: [{name: m, path: ''}]", "spec.outputs[0].path: String should have at least 1"),
        ("outputs: [{name: m, path: a, file: a}]", "unknown field 'file'"),
    ],
)
def test_bad_outputs_name_file_line_and_field(tmp_path: Path, bad: str, expected: str) -> None:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(JOB + f"  {bad}\n")
    with pytest.raises(SpecError) as caught:
        load_fleet([spec_file], load_catalog())
    (issue,) = [str(i) for i in caught.value.issues]
    assert issue.startswith(f"{spec_file}:6:") and expected in issue


def test_derived_residency_is_inherit_or_ignore(tmp_path: Path) -> None:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(
        "apiVersion: polycloud/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  derivedResidency: drop\n"
    )
    with pytest.raises(SpecError) as caught:
        load_fleet([spec_file], load_catalog())
    (issue,) = [str(i) for i in caught.value.issues]
    assert (
        issue.startswith(f"{spec_file}:5:")
        and "spec.derivedResidency: Input should be 'inherit' or 'ignore'" in issue
    )
