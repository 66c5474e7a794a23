"""/api/v1/lineage: the names that have lineage (the dashboard's choices) and the graph around one, both
scoped to a project token's own workloads."""

from __future__ import annotations

from typing import Any

from tests.controller.lineage_story import DIGEST, MODEL_PATH, seed

from .conftest import Governed


def listed(gov: Governed, headers: dict[str, str]) -> list[tuple[str, str, int]]:
    answer = gov.client.get("/api/v1/lineage", headers=headers)
    assert answer.status_code == 200, answer.text
    return [(n["name"], n["kind"], n["runs"]) for n in answer.json()["names"]]


def graph(gov: Governed, name: str, headers: dict[str, str], depth: int | None = None) -> Any:
    query = {} if depth is None else {"depth": depth}
    return gov.client.get(f"/api/v1/lineage/{name}", params=query, headers=headers)


def test_nothing_recorded_lists_nothing(governed: Governed) -> None:
    assert listed(governed, governed.token("viewer")) == []


def test_every_traceable_name_once_in_the_order_lineage_flows(governed: Governed) -> None:
    seed(governed.store, service="alpha-svc")
    assert listed(governed, governed.token("viewer")) == [
        ("iris-measurements", "dataset", 3),  # read by three job attempts
        ("train-iris", "job", 3),
        (f"sha256:{DIGEST}", "model", 4),  # written once, served by three rollouts
        ("alpha-svc", "service", 3),
        (MODEL_PATH, "artifact", 1),  # what the failed attempt left, without a digest
    ]
    model = next(
        n
        for n in governed.client.get("/api/v1/lineage", headers=governed.token("viewer")).json()["names"]
        if n["kind"] == "model"
    )
    assert model["paths"] == [MODEL_PATH]


def test_every_listed_name_has_a_graph(governed: Governed) -> None:
    seed(governed.store, service="alpha-svc")
    viewer = governed.token("viewer")
    for name, _, _ in listed(governed, viewer):
        answer = graph(governed, name, viewer)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["roots"], name


def test_a_model_path_is_traced_however_its_slashes_are_written(governed: Governed) -> None:
    seed(governed.store)
    viewer = governed.token("viewer")
    for written in (MODEL_PATH, MODEL_PATH.replace("/", "%2F")):
        answer = governed.client.get(f"/api/v1/lineage/{written}", headers=viewer)
        assert answer.status_code == 200, (written, answer.text)
        assert f"model:sha256:{DIGEST}" in answer.json()["roots"]


def test_a_project_token_lists_only_what_its_workloads_touch(governed: Governed) -> None:
    seed(governed.store, service="alpha-svc")
    alpha = {(name, kind) for name, kind, _ in listed(governed, governed.token("viewer", "alpha"))}
    assert ("alpha-svc", "service") in alpha
    assert ("train-iris", "job") not in alpha  # no project's workload: only fleet-wide tokens see it
    beta = {(name, kind) for name, kind, _ in listed(governed, governed.token("viewer", "beta"))}
    assert not {kind for _, kind in beta} & {"service", "job"}
    assert graph(governed, "alpha-svc", governed.token("viewer", "beta")).status_code == 404


def test_the_graph_carries_costs_states_and_places(governed: Governed) -> None:
    story = seed(governed.store, service="alpha-svc")
    answer = graph(governed, story.dataset, governed.token("viewer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["roots"] == ["dataset:polycloud://fra-onprem/iris-measurements"]
    states = sorted(
        (n["job"], n["revision"], n.get("cluster"), n["state"]) for n in body["nodes"] if "job" in n
    )
    assert states == [
        ("alpha-svc", 2, "aws-use1", "COMPLETE"),
        ("alpha-svc", 2, "gcp-euw4", "COMPLETE"),
        ("alpha-svc", 3, "aws-use1", "ABORT"),
        ("train-iris", 1, "fra-onprem", "COMPLETE"),
        ("train-iris", 1, "fra-onprem", "FAIL"),
        ("train-iris", 2, "aws-use1", "RUNNING"),
    ]
    costs = sorted((e["kind"], e["costUSD"]) for e in body["edges"] if e["costUSD"])
    assert costs == [("read", story.egress_usd), ("wrote", 0.0031), ("wrote", story.compute_usd)]


def test_depth_bounds_and_bad_input(governed: Governed) -> None:
    seed(governed.store)
    viewer = governed.token("viewer")
    shallow = graph(governed, "iris-measurements", viewer, depth=1).json()
    assert {e["kind"] for e in shallow["edges"]} == {"read"}
    refused = graph(governed, "iris-measurements", viewer, depth=0)
    assert refused.status_code == 400 and "depth" in refused.text, refused.text
    missing = graph(governed, "no-such-thing", viewer)
    assert missing.status_code == 404 and "no lineage of 'no-such-thing'" in missing.text
