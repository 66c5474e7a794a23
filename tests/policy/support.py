"""A small fleet as YAML text, and helpers to load it with policies and evaluate them."""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Mapping
from pathlib import Path

from polycloud.catalog import Catalog
from polycloud.placement import plan_fleet
from polycloud.policy import Report, Violation, evaluate
from polycloud.spec import Fleet, load_fleet

CLUSTERS = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: us}
spec: {provider: aws, region: us-east-1}
---
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: eu}
spec:
  provider: onprem
  region: lisbon
  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
---
apiVersion: polycloud/v1
kind: Dataset
metadata: {name: records}
spec: {cluster: eu, sizeGB: 100, residency: EU}
"""

SERVICE = """\
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: api, labels: {team: web, env: prod}}
spec:
  model: {uri: "s3://models/api.onnx", sha256: "%s"}
  resources: {vcpus: 2, memoryGiB: 4}
"""

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


def policy(spec: str, name: str = "org") -> str:
    """A Policy document with `spec` (YAML, indented by the caller or not)."""
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return f"---\napiVersion: polycloud/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n{body}\n"


def write(tmp_path: Path, *parts: str, name: str = "fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text("".join(parts))
    return path


def load(catalog: Catalog, *paths: Path) -> Fleet:
    return load_fleet(list(paths), catalog)


def check(
    catalog: Catalog,
    *paths: Path,
    planned: bool = False,
    digests: Mapping[str, str] | None = None,
    secrets: Collection[str] | None = None,
) -> Report:
    """Load `paths` and evaluate their policies (against the planner's plan when `planned`)."""
    fleet = load(catalog, *paths)
    plan = plan_fleet(fleet, catalog).placements if planned else None
    return evaluate(fleet, catalog, plan=plan, digests=digests, secrets=secrets)


def only(report: Report) -> Violation:
    """The one violation of `report`."""
    assert len(report.violations) == 1, [str(v) for v in report.violations]
    return report.violations[0]


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line of `path` containing `needle`."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)
