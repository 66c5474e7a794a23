"""The lineage graph walked from a dataset, a job, a service or a model digest, both ways, with costs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.controller.lineage_fleet import LineageFleet

from polycloud.catalog import load_catalog
from polycloud.controller.lineage import LineageRecorder
from polycloud.errors import NotFoundError
from polycloud.services.lineage import lineage


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[LineageFleet]:
    catalog = load_catalog()
    found = LineageFleet(tmp_path, catalog)
    lineage_of = LineageRecorder(found.store, catalog, url=None)
    found.start_attempt()
    found.end_attempt()
    found.replicas((1, "ready"))
    lineage_of.record()
    yield found
    found.store.close()


def chain(graph: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((e["from"].split(":")[0], e["kind"], e["to"].split(":")[0]) for e in graph["edges"])


def test_from_the_dataset_to_the_clusters_that_serve_its_model(fleet: LineageFleet) -> None:
    graph = lineage(fleet.store, "records")
    (root,) = graph["roots"]
    assert root == "dataset:polycloud://eu/records"
    assert chain(graph) == [("dataset", "read", "run"), ("model", "served", "run"), ("run", "wrote", "model")]
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[f"model:sha256:{fleet.digest}"]["paths"] == [str(fleet.model.resolve())]
    serving = next(n for n in graph["nodes"] if n["kind"] == "service-rollout")
    assert (serving["job"], serving["cluster"], serving["jurisdiction"], serving["state"]) == (
        "scorer",
        "us",
        "US",
        "COMPLETE",
    )
    assert serving["startedAt"] and serving["endedAt"]
    trained = next(n for n in graph["nodes"] if n["kind"] == "job-run")
    assert (trained["job"], trained["cluster"], trained["jurisdiction"]) == ("train", "eu", "EU")
    wrote = next(e for e in graph["edges"] if e["kind"] == "wrote")
    assert wrote["costUSD"] == trained["computeUSD"]
    read = next(e for e in graph["edges"] if e["kind"] == "read")
    assert read["costUSD"] == 0.0  # the data is read where it lives


def test_from_the_service_or_the_digest_back_to_the_dataset(fleet: LineageFleet) -> None:
    for name in ("scorer", f"sha256:{fleet.digest}", "train"):
        graph = lineage(fleet.store, name)
        assert "dataset:polycloud://eu/records" in {n["id"] for n in graph["nodes"]}, name


def test_depth_bounds_the_walk(fleet: LineageFleet) -> None:
    graph = lineage(fleet.store, "records", depth=1)
    assert chain(graph) == [("dataset", "read", "run")]


def test_a_project_token_sees_only_its_own_runs(fleet: LineageFleet) -> None:
    graph = lineage(fleet.store, "records", own={"train"})
    assert all(n.get("workload") in (None, "train") for n in graph["nodes"])


def test_an_unknown_name_is_not_found(fleet: LineageFleet) -> None:
    with pytest.raises(NotFoundError, match="no lineage of 'nothing'"):
        lineage(fleet.store, "nothing")
