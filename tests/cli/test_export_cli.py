"""`polycloud export k8s` as a user runs it: files per cluster, valid manifests, formats, exit codes."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from tests.support import build_model
from typer.testing import CliRunner

from polycloud.cli.main import app

FLEET = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: eks-use1}
spec:
  provider: aws
  region: us-east-1
  driver: {type: kubernetes, context: eks-prod, namespace: ml, image: "acme/polycloud-server:0.1.0"}
---
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: gke-euw4}
spec:
  provider: gcp
  region: europe-west4
  driver: {type: kubernetes, context: gke-prod, image: "acme/polycloud-server:0.1.0"}
---
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: laptop}
spec:
  provider: onprem
  region: desk
  driver: {type: local}
  location: {lat: 52.5, lon: 13.4, jurisdiction: EU}
  instances: [{name: big, vcpus: 64, memoryGiB: 512, hourlyUSD: 100}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: fraud}
spec:
  model: {path: tiny.onnx}
  resources: {accelerator: T4, vcpus: 4, memoryGiB: 16}
  replicas: 2
  pattern: active-passive
  placement: {providers: [aws, gcp]}
  env: [{name: MODE, value: fast}, {name: API_TOKEN, secret: fraud-token}]
---
apiVersion: polycloud/v1
kind: Job
metadata: {name: pretrain}
spec:
  resources: {accelerator: T4, vcpus: 4, memoryGiB: 16}
  hours: 2
  spot: true
  placement: {clusters: [gke-euw4]}
  command: [python, train.py]
  checkpoint: {everySeconds: 60}
  recovery: {strategy: next-cheapest, maxRestarts: 4}
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    folder = tmp_path / "fleet"
    folder.mkdir()
    build_model(folder / "tiny.onnx")
    (folder / "fleet.yaml").write_text(FLEET)
    return folder


def load(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load(path.read_text())
    return loaded


def test_export_writes_valid_manifests_per_cluster(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", "k8s", str(fleet), "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml"))
    primary, standby = (
        ("eks-use1", "gke-euw4")
        if (out / "eks-use1/service-fraud.yaml").exists()
        else (
            "gke-euw4",
            "eks-use1",
        )
    )
    assert f"{primary}/service-fraud.yaml" in files and f"{standby}/service-fraud.yaml" in files
    assert (
        "gke-euw4/job-pretrain.yaml" in files
        and "gke-euw4/persistentvolumeclaim-pretrain-checkpoint.yaml" in files
    )
    assert not any(f.startswith("laptop/") for f in files)
    assert "skipped (driver is not kubernetes): laptop" in result.output
    for path in out.rglob("*.yaml"):
        kubernetes_validate.validate(load(path), "1.30.0", strict=True)
    deployments = {p.parent.name: load(p) for p in out.rglob("deployment-fraud-*.yaml")}
    assert deployments[primary]["spec"]["replicas"] == 2  # type: ignore[index]
    assert deployments[standby]["spec"]["replicas"] == 1  # type: ignore[index]
    text = (next(out.rglob(f"{primary}/deployment-fraud-*.yaml"))).read_text()
    assert "secretKeyRef" in text and "polycloud-fraud-token" in text
    if primary == "eks-use1":
        assert "namespace: ml" in text


def test_argo_format_writes_workflows(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", "k8s", str(fleet), "--out", str(out), "--format", "argo"])
    assert result.exit_code == 0, result.output
    workflow = load(out / "gke-euw4" / "workflow-pretrain.yaml")
    assert workflow["apiVersion"] == "argoproj.io/v1alpha1"
    train = workflow["spec"]["templates"][1]  # type: ignore[index]
    assert train["container"]["command"] == ["python", "train.py"]
    assert train["retryStrategy"]["limit"] == "4"
    assert train["nodeSelector"] == {"cloud.google.com/gke-spot": "true"}
    assert not (out / "gke-euw4" / "job-pretrain.yaml").exists()


def test_bad_format_missing_image_and_infeasible(fleet: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["export", "k8s", str(fleet), "--out", str(tmp_path / "o"), "--format", "helm"])
    assert bad.exit_code == 2 and "helm" in bad.output  # a usage error, listing the choices
    (fleet / "fleet.yaml").write_text(FLEET.replace(', image: "acme/polycloud-server:0.1.0"}', "}", 1))
    no_image = runner.invoke(app, ["export", "k8s", str(fleet), "--out", str(tmp_path / "o")])
    assert no_image.exit_code == 1 and "eks-use1: driver.image is required" in no_image.output
    (fleet / "fleet.yaml").write_text(
        FLEET.replace("hours: 2", "hours: 2\n  nodes: 1\n  reads: []").replace(
            "placement: {clusters: [gke-euw4]}", "placement: {clusters: [laptop], providers: [aws]}"
        )
    )
    infeasible = runner.invoke(app, ["export", "k8s", str(fleet), "--out", str(tmp_path / "p")])
    assert infeasible.exit_code == 2, infeasible.output
    assert "cannot place Job pretrain" in infeasible.output
    assert (tmp_path / "p").exists()  # the rest is still written


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["export", "k8s", "--help"])
    assert result.exit_code == 0 and "Example: polycloud export k8s" in result.output
