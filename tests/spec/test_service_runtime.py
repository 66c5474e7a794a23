"""A Service's `protocol` and `runtime` (issue 14): what they accept, and clear errors for the rest."""

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
spec: {provider: aws, region: us-east-1}
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: chat}
spec:
"""


def load(tmp_path: Path, spec: str) -> Path:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(CLUSTER + spec)
    return spec_file


def test_a_runtime_command_is_resolved_next_to_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text("print('hi')\n")
    (tmp_path / "weights").mkdir()
    spec_file = load(
        tmp_path,
        "  protocol: openai\n  model: {path: weights}\n"
        '  runtime: {command: [python, server.py, --port, "${PORT}"], readinessPath: /v1/models}\n'
        "  prefixAffinity: true\n",
    )
    service = load_fleet([spec_file], load_catalog()).services["chat"].spec
    assert service.runtime is not None and service.runtime.command == [
        "python",
        str((tmp_path / "server.py").resolve()),
        "--port",
        "${PORT}",
    ]
    assert service.protocol == "openai" and service.prefixAffinity
    assert service.model is not None and service.model.path == str((tmp_path / "weights").resolve())


def test_an_image_only_runtime_needs_no_model(tmp_path: Path) -> None:
    spec_file = load(
        tmp_path, "  protocol: openai\n  runtime: {image: 'vllm/vllm-openai:v0.33.0', args: [--model, m]}\n"
    )
    service = load_fleet([spec_file], load_catalog()).services["chat"].spec
    assert service.model is None and service.runtime is not None and service.runtime.port == 8000


@pytest.mark.parametrize(
    ("spec", "line", "expected"),
    [
        ("  replicas: 1\n", 10, "spec: give a model (served by polycloud) or a runtime"),
        ("  runtime: {port: 8000}\n", 10, "spec.runtime: give a command (local driver), an image"),
        (
            "  runtime: {image: x, port: 70000}\n",
            10,
            "spec.runtime.port: Input should be less than or equal to 65535",
        ),
        (
            "  runtime: {image: x, readinessPath: health}\n",
            10,
            "spec.runtime.readinessPath: String should match",
        ),
        ("  runtime: {command: []}\n", 10, "spec.runtime.command: List should have at least 1 item"),
        (
            "  protocol: grpc\n  runtime: {image: x}\n",
            10,
            "spec.protocol: Input should be 'oip-v2' or 'openai'",
        ),
        (
            "  runtime: {image: x}\n  prefixAffinity: true\n",
            10,
            "prefixAffinity routes by the prompt: it needs protocol: openai",
        ),
        ("  runtime: {image: x, comand: [a]}\n", 10, "unknown field 'comand' (did you mean 'command'?)"),
    ],
)
def test_bad_runtime_fields_name_file_line_and_field(
    tmp_path: Path, spec: str, line: int, expected: str
) -> None:
    spec_file = load(tmp_path, spec)
    with pytest.raises(SpecError) as caught:
        load_fleet([spec_file], load_catalog())
    (issue,) = [str(i) for i in caught.value.issues]
    assert issue.startswith(f"{spec_file}:{line}:") and expected in issue, issue
