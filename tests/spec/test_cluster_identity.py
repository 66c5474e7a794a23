"""A Cluster's `spec.identity.audience`: the `aud` of its workloads' identity tokens, checked on load."""

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
  location: {lat: 38.7, lon: -9.1}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
"""


def load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return load_fleet([path], load_catalog()).clusters["site-a"].spec.identity.audience


def test_the_audience_defaults_to_aws_sts_and_takes_any_cloud_s(tmp_path: Path) -> None:
    assert load(tmp_path, CLUSTER) == "sts.amazonaws.com"
    azure = CLUSTER + "  identity: {audience: 'api://AzureADTokenExchange'}\n"
    assert load(tmp_path, azure) == "api://AzureADTokenExchange"


@pytest.mark.parametrize("audience", ["''", "'two words'", "x" * 513], ids=["empty", "space", "long"])
def test_a_bad_audience_names_its_line_and_field(tmp_path: Path, audience: str) -> None:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, CLUSTER + f"  identity: {{audience: {audience}}}\n")
    (issue,) = [str(i) for i in caught.value.issues]
    assert issue.startswith(f"{tmp_path / 'fleet.yaml'}:9:") and "spec.identity.audience" in issue
