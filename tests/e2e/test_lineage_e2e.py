"""Lineage end to end on examples/train-then-serve/: OpenLineage events of the training job and of both
service revisions reach a real HTTP collector started here, valid against the client's models, every
one once although the collector is down while the job runs and the control plane is killed; then
`polycloud lineage` answers from the dataset to the clusters serving the trained model."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.controller.collector import Collector
from tests.controller.lineage_schema import conforms
from tests.e2e.conftest import Polycloud

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train-then-serve"


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector().start()
    yield found
    found.stop()


def job_state(polycloud: Polycloud) -> str | None:
    response = polycloud.api().get("/jobs")
    response.raise_for_status()
    return next((j["state"] for j in response.json()["jobs"] if j["name"] == "train-iris"), None)


def seen(events: list[dict[str, Any]]) -> Counter[tuple[str, str, int]]:
    """(job, event type, revision) of every event received."""
    return Counter(
        (e["job"]["name"], e["eventType"], e["run"]["facets"]["polycloud_run"]["revision"]) for e in events
    )


def test_lineage_from_the_dataset_to_the_serving_clusters(
    polycloud: Polycloud, collector: Collector, tmp_path: Path
) -> None:
    example = shutil.copytree(EXAMPLE, tmp_path / "example", ignore=shutil.ignore_patterns("iris-v2.onnx"))
    for name in ("fleet.yaml", "fleet-v2.yaml"):
        path = example / name
        path.write_text(path.read_text().replace("bakeSeconds: 10", "bakeSeconds: 1"))
    polycloud.env |= {"POLYCLOUD_OPENLINEAGE_URL": collector.url, "POLYCLOUD_LINEAGE_INTERVAL_S": "0.2"}
    collector.stop()  # the collector is down while the job trains and r1 rolls out

    polycloud.ok("apply", example / "fleet.yaml", "--yes")
    polycloud.eventually(lambda: job_state(polycloud) == "succeeded", "training to finish")
    polycloud.eventually(lambda: _kept(polycloud, "iris", "COMPLETE"), "r1 to be ready and recorded")
    polycloud.kill_control_plane()  # a crash with every event still in the outbox
    polycloud.ok("up", "--detach")
    collector.start()  # back, on the same port

    polycloud.ok("apply", example / "fleet-v2.yaml", "--yes")
    want = Counter(
        {
            ("train-iris", "START", 1): 1,
            ("train-iris", "COMPLETE", 1): 1,
            ("iris", "START", 1): 1,
            ("iris", "COMPLETE", 1): 1,
            ("iris", "START", 2): 1,
            ("iris", "COMPLETE", 2): 1,
        }
    )
    try:
        polycloud.eventually(lambda: seen(collector.received()) == want, "every event at the collector")
    except pytest.fail.Exception:
        got = seen(collector.received())
        graph = polycloud.cli("lineage", "iris", "--json").stdout
        pytest.fail(f"received {dict(got)}, want {dict(want)}\n{graph}\n{polycloud.diagnostics()}")
    received = collector.received()
    assert len({(e["run"]["runId"], e["eventType"]) for e in received}) == len(received) == 6  # once each
    for event in received:
        conforms(event)
    trained = next(e for e in received if e["eventType"] == "COMPLETE" and e["job"]["name"] == "train-iris")
    (model,) = trained["outputs"]
    digest = model["facets"]["polycloud_artifact"]["sha256"]
    served = [e for e in received if e["job"]["name"] == "iris" and e["eventType"] == "COMPLETE"]
    assert digest in {e["inputs"][0]["facets"]["polycloud_artifact"]["sha256"] for e in served}

    graph = json.loads(polycloud.ok("lineage", "iris-measurements", "--json").stdout)
    rollouts = [n for n in graph["nodes"] if n["kind"] == "service-rollout"]
    assert [(n["job"], n["revision"], n["cluster"], n["region"]) for n in rollouts] == [
        ("iris", 2, "aws-use1", "us-east-1")
    ]  # r1 served iris-v1.onnx, which no job of the fleet wrote
    assert any(n["id"] == f"model:sha256:{digest}" for n in graph["nodes"])
    tree = polycloud.ok("lineage", "iris-measurements").stdout
    assert "service iris r2 on aws-use1 (aws/us-east-1" in tree and "job train-iris r1 attempt 1" in tree
    up = polycloud.ok("lineage", f"sha256:{digest}").stdout
    assert "dataset iris-measurements" in up
    assert polycloud.cli("lineage", "no-such-thing").rc != 0


def _kept(polycloud: Polycloud, job: str, event_type: str) -> bool:
    """Whether the control plane has recorded that event (its lineage graph shows the run)."""
    response = polycloud.api().get(f"/lineage/{job}")
    if response.status_code == httpx.codes.NOT_FOUND:
        return False
    response.raise_for_status()
    return any(n.get("state") == event_type for n in response.json()["nodes"] if n.get("job") == job)
