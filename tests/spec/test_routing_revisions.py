"""Routing by a flag to revisions of the same service: a variant's target is a service name or a
revision number; numbers are checked at apply against the recorded revisions, with FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycloud.catalog import load_catalog
from polycloud.errors import NotFoundError, SpecError
from polycloud.spec import Fleet, load_fleet
from polycloud.spec.references import check_routed_revisions

DOCS = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: site-a}
spec:
  provider: acme
  region: lisbon
  location: {lat: 38.7, lon: -9.1}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: ranker}
spec:
  model: {path: m.onnx}
  routing: {flag: ranker-version, variants: VARIANTS}
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: ranker-v2}
spec:
  model: {path: m.onnx}
---
apiVersion: polycloud/v1
kind: FeatureFlag
metadata: {name: ranker-version}
spec:
  state: ENABLED
  variants: {"old": "old", "new": "new", "other": "other"}
  defaultVariant: "new"
"""


def load(tmp_path: Path, variants: str) -> Fleet:
    (tmp_path / "m.onnx").write_bytes(b"x")
    path = tmp_path / "fleet.yaml"
    path.write_text(DOCS.replace("VARIANTS", variants))
    return load_fleet([path], load_catalog())


def errors(tmp_path: Path, variants: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, variants)
    return [str(i).removeprefix(f"{tmp_path / 'fleet.yaml'}:") for i in caught.value.issues]


def test_a_variant_names_a_service_or_a_revision(tmp_path: Path) -> None:
    fleet = load(tmp_path, '{"old": 1, "new": 2, "other": ranker-v2}')
    routing = fleet.services["ranker"].spec.routing
    assert routing is not None
    assert routing.variants == {"old": 1, "new": 2, "other": "ranker-v2"}
    assert routing.revisions() == {1, 2}
    dumped = fleet.services["ranker"].model_dump(mode="json")["spec"]["routing"]["variants"]
    assert dumped == {"old": 1, "new": 2, "other": "ranker-v2"}  # numbers stay numbers in the store


@pytest.mark.parametrize("value", ["0", "-3", "true", "1.5", "[1]", "2147483648"])
def test_a_revision_must_be_a_positive_whole_number(tmp_path: Path, value: str) -> None:
    (msg,) = errors(tmp_path, f'{{"old": {value}}}')
    assert msg.startswith("15:53: spec.routing.variants.old: give a Service's name or a revision number"), msg


def test_a_quoted_number_is_a_service_name(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, '{"old": "1"}')
    assert msg.startswith("15:53: spec.routing.variants.old: unknown service '1'"), msg


def test_a_revision_variant_is_still_a_variant_of_the_flag(tmp_path: Path) -> None:
    (msg,) = errors(tmp_path, '{"olde": 1}')
    assert msg == "15:46: spec.routing.variants.olde: flag 'ranker-version' has no variant 'olde'"


def never_applied(name: str) -> set[int]:
    raise NotFoundError(f"no workload {name!r}")


def test_routed_revisions_must_be_recorded(tmp_path: Path) -> None:
    fleet = load(tmp_path, '{"old": 1, "new": 4}')
    assert check_routed_revisions(fleet, {"ranker": {1, 2, 3, 4}}.__getitem__) == []
    (issue,) = check_routed_revisions(fleet, {"ranker": {1, 2, 3}}.__getitem__)
    assert str(issue).removeprefix(f"{tmp_path / 'fleet.yaml'}:") == (
        "15:63: spec.routing.variants.new: 'ranker' has no revision 4 (its revisions are 1..3)"
    )
    new = [str(i).split(": ", 1)[1] for i in check_routed_revisions(fleet, never_applied)]
    assert new == [
        "spec.routing.variants.old: 'ranker' has no revision 1 (it has no revision yet)",
        "spec.routing.variants.new: 'ranker' has no revision 4 (it has no revision yet)",
    ]
