"""RoleBinding documents load beside the rest of a fleet; every mistake in one is FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycloud.catalog import load_catalog
from polycloud.errors import SpecError
from polycloud.spec import load_fleet

GOOD = """\
apiVersion: polycloud/v1
kind: RoleBinding
metadata: {name: risk-deployers}
spec:
  role: deployer
  project: risk
  subjects: [{group: ml-risk}, {user: alice@example.com}]
"""


def errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "access.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_fleet([path], load_catalog())
    return [str(i) for i in caught.value.issues]


def test_a_role_binding_loads(tmp_path: Path) -> None:
    path = tmp_path / "access.yaml"
    path.write_text(GOOD)
    binding = load_fleet([path], load_catalog()).role_bindings["risk-deployers"]
    assert binding.spec.role == "deployer" and binding.spec.project == "risk"
    assert [(s.group, s.user) for s in binding.spec.subjects] == [
        ("ml-risk", None),
        (None, "alice@example.com"),
    ]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            ("role: deployer", "role: owner"),
            ":5:9: spec.role: Input should be 'viewer', 'deployer' or 'admin'",
        ),
        (("project: risk", "project: Risk!"), ":6:12: spec.project: project 'Risk!' must be"),
        (("{group: ml-risk}", "{group: ml-risk, user: bob}"), ":7:14: spec.subjects[0]: give exactly one"),
        (("{group: ml-risk}", "{team: ml-risk}"), ":7:15: spec.subjects[0].team: unknown field 'team'"),
        (
            ("subjects: [{group: ml-risk}, {user: alice@example.com}]", "subjects: []"),
            ":7:13: spec.subjects:",
        ),
    ],
)
def test_mistakes_point_at_the_field(tmp_path: Path, change: tuple[str, str], where: str) -> None:
    (message,) = errors(tmp_path, GOOD.replace(*change))
    assert message.startswith(str(tmp_path / "access.yaml")) and where in message, message
