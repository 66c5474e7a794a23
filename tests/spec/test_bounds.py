"""Every number a spec accepts has an upper bound; booleans are booleans; a spec file has a size limit.
Each refusal is a `FILE:LINE:COL: path.to.field: message` line from validate, plan and apply alike."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from polycloud.catalog import load_catalog
from polycloud.cli.main import app
from polycloud.errors import SpecError
from polycloud.spec import load_fleet
from polycloud.spec.loading import MAX_FILE_BYTES
from polycloud.spec.models import KINDS

SITE = """\
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
metadata: {name: svc}
spec:
  model: {path: m.onnx}
  replicas: REPLICAS
"""


def numeric_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, list[Any]]]:
    """(path, annotation, constraints) of every int or float field reachable from `model`."""
    found: list[tuple[str, Any, list[Any]]] = []
    for name, info in model.model_fields.items():
        found.extend(_walk(info.annotation, list(info.metadata), f"{prefix}{name}"))
    return found


def _walk(annotation: Any, metadata: list[Any], path: str) -> list[tuple[str, Any, list[Any]]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *more = typing.get_args(annotation)
        return _walk(inner, metadata + [m for x in more for m in getattr(x, "metadata", [x])], path)
    if origin in (typing.Union, types.UnionType):
        return [f for arg in typing.get_args(annotation) for f in _walk(arg, metadata, path)]
    if origin is list:
        return _walk(typing.get_args(annotation)[0], [], f"{path}[]")
    if origin is dict:
        return _walk(typing.get_args(annotation)[1], [], f"{path}{{}}")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return numeric_fields(annotation, f"{path}.")
    if annotation in (int, float):
        return [(path, annotation, metadata)]
    return []


def test_every_number_of_every_kind_has_an_upper_bound() -> None:
    unbounded = []
    for kind, model in KINDS.items():
        for path, _, constraints in numeric_fields(model):
            if not any(isinstance(c, annotated_types.Le | annotated_types.Lt) for c in constraints):
                unbounded.append(f"{kind} {path}")
    assert not unbounded, unbounded


def test_the_bounds_are_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()
    assert "## Limits" in doc
    for needle in ("10,000", "65,536", "100,000", "8,760", "1 MiB"):
        assert needle in doc


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "m.onnx").write_bytes(b"x")
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["apply", "--yes", "--no-wait"]])
def test_a_huge_replica_count_is_refused_by_every_command(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYCLOUD_HOME", str(tmp_path / "home"))
    path = write(tmp_path, SITE.replace("REPLICAS", "99999999999999999999"))
    result = CliRunner().invoke(app, [*command, str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:15:13: spec.replicas: Input should be less than or equal to 10000" in result.output
    assert not (tmp_path / "home").exists()  # refused before any control plane was started


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("replicas: 10001", "spec.replicas", "less than or equal to 10000"),
        (
            "replicas: 1\n  resources: {memoryGiB: 1e9}",
            "spec.resources.memoryGiB",
            "less than or equal to 65536",
        ),
        ("replicas: 1\n  resources: {vcpus: .inf}", "spec.resources.vcpus", "finite number"),
        ("replicas: 1\n  latency: {maxRttMs: .nan}", "spec.latency.maxRttMs", "finite number"),
        ("replicas: 1\n  autoscaling: {maxReplicas: 20000}", "spec.autoscaling.maxReplicas", "10000"),
    ],
)
def test_bounds_of_a_service(tmp_path: Path, field: str, value: str, message: str) -> None:
    path = write(tmp_path, SITE.replace("replicas: REPLICAS", field))
    with pytest.raises(SpecError) as caught:
        load_fleet([path], load_catalog())
    (issue,) = caught.value.issues
    assert (issue.path, issue.file) == (value, str(path)) and message in issue.message


JOB = """\
apiVersion: polycloud/v1
kind: Job
metadata: {name: train}
spec:
  hours: 2
  spot: SPOT
"""


@pytest.mark.parametrize("lax", ["0", "1", '"yes"', '"true"', "null"])
def test_booleans_are_true_or_false_only(tmp_path: Path, lax: str) -> None:
    path = write(tmp_path, JOB.replace("SPOT", lax))
    with pytest.raises(SpecError) as caught:
        load_fleet([path], load_catalog())
    (issue,) = caught.value.issues
    assert str(issue).startswith(f"{path}:6:9: spec.spot: must be true or false, not ")


@pytest.mark.parametrize("strict", ["true", "false", "yes"])  # YAML's own `yes` is a boolean
def test_real_booleans_load(tmp_path: Path, strict: str) -> None:
    fleet = load_fleet(
        [write(tmp_path, SITE.replace("REPLICAS", "1") + "---\n" + JOB.replace("SPOT", strict))],
        load_catalog(),
    )
    assert fleet.jobs["train"].spec.spot is (strict != "false")


def test_an_oversized_spec_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, SITE.replace("REPLICAS", "1") + "# " + "x" * MAX_FILE_BYTES + "\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:1:1: file too large: a spec file may hold at most 1 MiB" in result.output


def test_a_spec_file_at_the_limit_loads(tmp_path: Path) -> None:
    text = SITE.replace("REPLICAS", "1")
    path = write(tmp_path, text + "#" * (MAX_FILE_BYTES - len(text) - 1) + "\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert "svc" in load_fleet([path], load_catalog()).services


@pytest.mark.parametrize("name", ["UPPER", "with space", "-dash", "a/b"])
def test_secret_names_in_env_and_policies_are_checked(tmp_path: Path, name: str) -> None:
    text = SITE.replace("replicas: REPLICAS", f'env: [{{name: TOKEN, secret: "{name}"}}]')
    text += "---\napiVersion: polycloud/v1\nkind: Policy\nmetadata: {name: p}\n"
    text += f'spec: {{requiredSecrets: ["{name}"]}}\n'
    with pytest.raises(SpecError) as caught:
        load_fleet([write(tmp_path, text)], load_catalog())
    paths = sorted(i.path for i in caught.value.issues)
    assert paths == ["spec.env[0].secret", "spec.requiredSecrets[0]"]
    assert all(f"secret name {name!r} must be lower-case" in i.message for i in caught.value.issues)
