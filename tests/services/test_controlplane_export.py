"""`export_control_plane`: systemd units that systemd accepts, manifests Kubernetes' schemas accept, and
the properties production relies on (restarts, drain, hardening, where the master key goes)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from polycloud.errors import UserError
from polycloud.gateway.settings import GatewaySettings
from polycloud.services.controlplane_export import (
    DRAIN_S,
    GATEWAY_HOME,
    SERVER_HOME,
    ControlPlaneOptions,
    export_control_plane,
)

K8S_VERSION = "1.30.0"
UNITS = ("polycloud-init.service", "polycloud-server.service", "polycloud-gateway.service")


def polycloud_binary() -> str:
    """An executable that exists here (systemd-analyze checks ExecStart=): this venv's polycloud."""
    candidate = Path(sys.executable).with_name("polycloud")
    return str(candidate) if candidate.is_file() else sys.executable


def unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(text)
    return parser


def systemd(binary: str = "/opt/polycloud/bin/polycloud") -> dict[str, str]:
    return export_control_plane(ControlPlaneOptions("systemd", binary=binary))


def k8s(**options: Any) -> dict[str, dict[str, Any]]:
    files = export_control_plane(ControlPlaneOptions("k8s", **options))
    return {name: yaml.safe_load(text) for name, text in files.items()}


def test_drain_time_is_the_gateways() -> None:
    assert GatewaySettings().drain_timeout_s == DRAIN_S


# -- systemd ---------------------------------------------------------------------------------------


def test_systemd_files_and_their_units_parse() -> None:
    files = systemd()
    assert list(files) == [*UNITS, "polycloud.env", "polycloud-sysusers.conf"]
    for name in UNITS:
        service = unit(files[name])["Service"]
        assert service["User"] == "polycloud" and service["KillSignal"] == "SIGTERM"
        assert int(service["TimeoutStopSec"].removesuffix("s")) > DRAIN_S
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "ProtectHome": "yes",
            "CapabilityBoundingSet": "",
        }.items():
            assert service[key] == value, (name, key)
        home = GATEWAY_HOME if "gateway" in name else SERVER_HOME
        assert service["Environment"] == f"POLYCLOUD_HOME={home}"
        assert service["ReadWritePaths"] == home and service["StateDirectory"] == home.rsplit("/", 1)[1]
        assert service["EnvironmentFile"] == "/etc/polycloud/polycloud.env"


def test_restarts_and_install() -> None:
    files = systemd()
    init = unit(files["polycloud-init.service"])
    assert init["Service"]["Type"] == "oneshot" and "Restart" not in init["Service"]
    assert init["Service"]["StandardOutput"] == "null"  # the admin token stays out of the journal
    assert not init.has_section("Install")  # run by hand, never at boot: it migrates
    for name in ("polycloud-server.service", "polycloud-gateway.service"):
        parsed = unit(files[name])
        assert parsed["Service"]["Restart"] == "always" and parsed["Service"]["RestartSec"] in ("1s", "2s")
        assert parsed["Unit"]["StartLimitIntervalSec"] == "0"  # never give up restarting
        assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert "polycloud-init.service" in unit(files["polycloud-server.service"])["Unit"]["After"]


def test_master_key_is_a_credential_never_inline() -> None:
    files = systemd()
    for name in ("polycloud-init.service", "polycloud-server.service"):
        service = unit(files[name])["Service"]
        assert service["LoadCredential"] == "master-key:/etc/polycloud/master.key"
        assert '"%d/master-key"' in service["ExecStart"]
    gateway = files["polycloud-gateway.service"]
    assert "MASTER_KEY" not in gateway and "LoadCredential" not in gateway
    assert unit(gateway)["Service"]["ExecStart"] == "/opt/polycloud/bin/polycloud gateway"
    env = dict(
        line.split("=", 1)
        for line in files["polycloud.env"].splitlines()
        if line and not line.startswith("#")
    )
    assert set(env) == {"POLYCLOUD_DATABASE_URL", "POLYCLOUD_API_ADDR", "POLYCLOUD_GATEWAY_ADDR"}
    assert env["POLYCLOUD_DATABASE_URL"].startswith("postgresql+psycopg://")
    for name, text in files.items():
        assert not re.search(r"POLYCLOUD_MASTER_KEY=[A-Za-z0-9+/]{20,}", text), name


@pytest.mark.parametrize(
    ("name", "command"), [("polycloud-server.service", "server"), ("polycloud-init.service", "server init")]
)
def test_the_wrapper_hands_the_credential_to_polycloud(tmp_path: Path, name: str, command: str) -> None:
    """Run ExecStart= as systemd would ($$ → $, %d → the credentials directory) with a stand-in binary."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "master-key").write_text("c2VjcmV0LWtleQ==\n")
    fake = tmp_path / "polycloud"
    fake.write_text('#!/bin/sh\nprintf "%s|%s" "$POLYCLOUD_MASTER_KEY" "$*"\n')
    fake.chmod(0o755)
    exec_start = unit(systemd(str(fake))[name])["Service"]["ExecStart"]
    argv = shlex.split(exec_start.replace("$$", "$").replace("%d", str(credentials)))
    result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
    assert result.stdout == f"c2VjcmV0LWtleQ==|{command}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    for name, text in systemd(polycloud_binary()).items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = [line for line in result.stderr.splitlines() if "polycloud" in line]
    assert result.returncode == 0 and not ours, result.stderr


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous: an unknown key is reported."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = systemd(polycloud_binary())["polycloud-gateway.service"].replace("Restart=", "Restrat=")
    (tmp_path / "polycloud-gateway.service").write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "polycloud-gateway.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Restrat" in result.stderr


def test_bad_binary_is_refused() -> None:
    with pytest.raises(UserError, match="absolute path"):
        systemd("polycloud")


# -- Kubernetes ------------------------------------------------------------------------------------


def test_manifests_are_valid_and_named_by_kind() -> None:
    manifests = k8s()
    assert list(manifests) == [
        "job-polycloud-init.yaml",
        "deployment-polycloud-server.yaml",
        "service-polycloud-server.yaml",
        "poddisruptionbudget-polycloud-server.yaml",
        "deployment-polycloud-gateway.yaml",
        "service-polycloud-gateway.yaml",
        "poddisruptionbudget-polycloud-gateway.yaml",
    ]
    for manifest in manifests.values():
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        assert manifest["metadata"]["namespace"] == "polycloud"
        # The kubernetes driver collects objects labelled managed-by=polycloud: never these.
        assert "app.kubernetes.io/managed-by" not in manifest["metadata"]["labels"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_servers() -> None:
    manifests = k8s(servers=5, image="registry.example.com/polycloud:9.9.9", namespace="ml-control")
    deployment = manifests["deployment-polycloud-server.yaml"]
    assert deployment["spec"]["replicas"] == 5 and deployment["metadata"]["namespace"] == "ml-control"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # no two schema versions at once
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["image"] == "registry.example.com/polycloud:9.9.9"
    assert server["command"] == ["polycloud", "server"]
    assert server["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    env = env_of(server)
    assert env["POLYCLOUD_MASTER_KEY"] == {"secretKeyRef": {"name": "polycloud", "key": "master-key"}}
    assert env["POLYCLOUD_DATABASE_URL"] == {"secretKeyRef": {"name": "polycloud", "key": "database-url"}}
    assert env["POLYCLOUD_API_ADDR"] == "$(POD_IP):8700"
    assert "polycloud-server.ml-control.svc" in env["POLYCLOUD_API_HOSTS"].split(",")  # in-cluster clients
    assert pod["enableServiceLinks"] is False  # else Service polycloud-server sets POLYCLOUD_SERVER_*
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    selects(manifests["service-polycloud-server.yaml"]["spec"]["selector"], deployment)
    assert manifests["service-polycloud-server.yaml"]["spec"]["ports"][0]["port"] == 8700


def test_gateways() -> None:
    manifests = k8s(gateways=4)
    deployment = manifests["deployment-polycloud-gateway.yaml"]
    assert deployment["spec"]["replicas"] == 4
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    assert gateway["command"] == ["polycloud", "gateway"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    pre_stop = gateway["lifecycle"]["preStop"]["exec"]["command"]
    waits = float(re.findall(r"sleep\((\d+)\)", pre_stop[-1])[0])
    assert pod["terminationGracePeriodSeconds"] > waits + DRAIN_S
    env = env_of(gateway)
    assert "POLYCLOUD_MASTER_KEY" not in env and env["POLYCLOUD_HOME"] == GATEWAY_HOME
    assert env["POLYCLOUD_GATEWAY_ADDR"] == "0.0.0.0:8080"
    assert {"name": "home", "mountPath": GATEWAY_HOME} in gateway["volumeMounts"]
    selects(manifests["service-polycloud-gateway.yaml"]["spec"]["selector"], deployment)


def test_disruption_budgets_and_init_job() -> None:
    manifests = k8s()
    for role in ("server", "gateway"):
        budget = manifests[f"poddisruptionbudget-polycloud-{role}.yaml"]
        assert budget["spec"]["maxUnavailable"] == 1
        selects(budget["spec"]["selector"]["matchLabels"], manifests[f"deployment-polycloud-{role}.yaml"])
    job = manifests["job-polycloud-init.yaml"]
    (init,) = job["spec"]["template"]["spec"]["containers"]
    assert init["command"] == ["polycloud", "server", "init"]
    assert {"POLYCLOUD_MASTER_KEY", "POLYCLOUD_DATABASE_URL"} <= set(env_of(init))
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in job["spec"]  # its log holds the first admin token


def selects(selector: dict[str, str], deployment: dict[str, Any]) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items() and selector == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"servers": 0}, "at least 1"),
        ({"gateways": 0}, "at least 1"),
        ({"namespace": "ML_Prod"}, "DNS label"),
        ({"image": " "}, "image"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        k8s(**options)
