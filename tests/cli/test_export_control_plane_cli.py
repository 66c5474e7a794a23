"""`polycloud export control-plane` as an operator runs it: files and their modes, stdout, refusals."""

from __future__ import annotations

import stat
from pathlib import Path

import kubernetes_validate
import yaml
from typer.testing import CliRunner

from polycloud.cli.main import app

SYSTEMD_FILES = {
    "polycloud-init.service",
    "polycloud-server.service",
    "polycloud-gateway.service",
    "polycloud.env",
    "polycloud-sysusers.conf",
}


def export(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["export", "control-plane", *args])
    return result.exit_code, result.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_systemd_files_are_written_with_private_env(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    code, output = export("--format", "systemd", "--out", str(out), "--bin", "/usr/local/bin/polycloud")
    assert code == 0, output
    assert {p.name for p in out.iterdir()} == SYSTEMD_FILES
    assert mode(out / "polycloud.env") == 0o600 and mode(out / "polycloud-server.service") == 0o644
    assert "ExecStart=/usr/local/bin/polycloud gateway" in (out / "polycloud-gateway.service").read_text()
    assert "wrote 5 files" in output and "systemctl start polycloud-init" in output


def test_edited_files_are_kept_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert export("--format", "systemd", "--out", str(out))[0] == 0
    assert export("--format", "systemd", "--out", str(out))[0] == 0  # the same files again: fine
    env = out / "polycloud.env"
    env.write_text(env.read_text().replace("CHANGE-ME", "s3cret"))
    code, output = export("--format", "systemd", "--out", str(out))
    assert code == 1 and "polycloud.env" in output and "--force" in output
    assert "s3cret" in env.read_text()
    assert export("--format", "systemd", "--out", str(out), "--force")[0] == 0
    assert "CHANGE-ME" in env.read_text() and mode(env) == 0o600


def test_k8s_to_stdout_is_a_stream_kubectl_applies(tmp_path: Path) -> None:
    code, output = export("--format", "k8s", "--namespace", "ml", "--servers", "3", "--gateways", "2")
    assert code == 0, output
    documents = [d for d in yaml.safe_load_all(output) if d is not None]
    assert [d["kind"] for d in documents] == [
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
        assert document["metadata"]["namespace"] == "ml"


def test_k8s_to_files_says_which_secret_to_create(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    code, output = export("--format", "k8s", "--out", str(out), "--image", "acme/polycloud:1.2.3")
    assert code == 0, output
    assert len(list(out.glob("*.yaml"))) == 7
    assert "acme/polycloud:1.2.3" in (out / "deployment-polycloud-gateway.yaml").read_text()
    assert "create secret generic polycloud" in output


def test_systemd_to_stdout_names_each_file() -> None:
    code, output = export("--format", "systemd")
    assert code == 0
    assert "### polycloud-server.service\n" in output and "[Service]" in output


def test_options_of_the_other_format_and_bad_values_are_refused() -> None:
    code, output = export("--format", "systemd", "--image", "x", "--servers", "2")
    assert code == 1 and "does not take --image, --servers" in output
    code, output = export("--format", "k8s", "--bin", "/usr/bin/polycloud")
    assert code == 1 and "--bin" in output
    assert export("--format", "helm")[0] == 2
    assert export("--format", "k8s", "--servers", "0")[0] == 2
    code, output = export("--format", "k8s", "--namespace", "Not_A_Label")
    assert code == 1 and "DNS label" in output
    assert export()[0] == 2  # --format is required


def test_help_has_an_example() -> None:
    code, output = export("--help")
    assert code == 0 and "Example: polycloud export control-plane --format systemd --out deploy/" in output
