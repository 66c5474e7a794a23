"""Open Inference Protocol v2 REST behaviour of a replica, in process (httpx's ASGI transport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

Client = Any
"""conftest.Client: `.get(path)`, `.post(path, json=..., content=...)` -> httpx.Response."""
MakeClient = Callable[[Any], Client]
MakeReplica = Callable[..., Any]
Matmul = tuple[Path, "np.ndarray[Any, Any]", "np.ndarray[Any, Any]"]

INFER = "/v2/models/species/infer"


def iris_input(rows: list[list[float]], **changes: Any) -> dict[str, Any]:
    """An inference request for the iris model, with fields of its one input replaced by `changes`."""
    entry: dict[str, Any] = {
        "name": "input",
        "shape": [len(rows), 4],
        "datatype": "FP32",
        "data": [v for row in rows for v in row],
    }
    entry.update(changes)
    return {"inputs": [entry]}


def test_server_metadata(client: Client) -> None:
    answer = client.get("/v2")
    assert answer.status_code == 200
    assert answer.json()["name"] == "polycloud"
    assert "version" in answer.json() and answer.json()["extensions"] == []


def test_health(client: Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/species/ready").json() == {"name": "species", "ready": True}


def test_not_ready_while_shutting_down(client: Client, replica: Any) -> None:
    replica.ready = False
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/species/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200


def test_model_metadata(client: Client) -> None:
    assert client.get("/v2/models/species").json() == {
        "name": "species",
        "versions": ["3"],
        "platform": "onnxruntime",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }


def test_metadata_of_models_built_here(
    make_replica: MakeReplica, make_client: MakeClient, matmul: Matmul, int64_path: Path
) -> None:
    matmul_meta = make_client(make_replica(matmul[0], name="mm")).get("/v2/models/mm").json()
    assert matmul_meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert matmul_meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]
    int_meta = make_client(make_replica(int64_path, name="ints")).get("/v2/models/ints").json()
    assert int_meta["inputs"] == [
        {"name": "ids", "datatype": "INT64", "shape": [-1]},
        {"name": "offset", "datatype": "INT64", "shape": [1]},
    ]


def test_infer_iris_flat_and_nested(client: Client) -> None:
    data = load_iris()
    rows = data.data[[0, 60, 120]].tolist()
    flat = client.post(INFER, json={"id": "req-1", **iris_input(rows)})
    nested = client.post(INFER, json=iris_input(rows, data=rows))
    assert flat.status_code == 200 and nested.status_code == 200
    body = flat.json()
    assert body["model_name"] == "species" and body["model_version"] == "3" and body["id"] == "req-1"
    label, probabilities = body["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [3], "data": [0, 1, 2]}
    assert probabilities["shape"] == [3, 3] and len(probabilities["data"]) == 9
    assert np.allclose(np.reshape(probabilities["data"], (3, 3)).sum(axis=1), 1.0)
    assert nested.json()["outputs"] == body["outputs"]
    assert "id" not in nested.json()


def test_infer_selected_outputs(client: Client) -> None:
    request = {**iris_input([[5.1, 3.5, 1.4, 0.2]]), "outputs": [{"name": "probabilities"}]}
    outputs = client.post(INFER, json=request).json()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities"]


def test_infer_with_version_path(client: Client) -> None:
    ok = client.post("/v2/models/species/versions/3/infer", json=iris_input([[5.1, 3.5, 1.4, 0.2]]))
    assert ok.status_code == 200
    assert client.get("/v2/models/species/versions/3").status_code == 200
    assert client.get("/v2/models/species/versions/9").status_code == 404
    assert (
        client.post("/v2/models/species/versions/9/infer", json=iris_input([[1, 2, 3, 4]])).status_code == 404
    )


def test_infer_int64_and_bytes_models(
    make_replica: MakeReplica, make_client: MakeClient, int64_path: Path, strings_path: Path
) -> None:
    ints = make_client(make_replica(int64_path, name="ints"))
    answer = ints.post(
        "/v2/models/ints/infer",
        json={
            "inputs": [
                {"name": "ids", "shape": [3], "datatype": "INT64", "data": [1, 2, 2**40]},
                {"name": "offset", "shape": [1], "datatype": "INT64", "data": [10]},
            ]
        },
    )
    assert answer.json()["outputs"] == [
        {"name": "shifted", "datatype": "INT64", "shape": [3], "data": [11, 12, 2**40 + 10]}
    ]
    words = make_client(make_replica(strings_path, name="words"))
    request = {"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "data": ["héllo", ""]}]}
    [out] = words.post("/v2/models/words/infer", json=request).json()["outputs"]
    assert out == {"name": "same", "datatype": "BYTES", "shape": [2], "data": ["héllo", ""]}


def test_unknown_model_is_404(client: Client) -> None:
    for answer in (
        client.get("/v2/models/other"),
        client.get("/v2/models/other/ready"),
        client.post("/v2/models/other/infer", json=iris_input([[1, 2, 3, 4]])),
    ):
        assert answer.status_code == 404
        assert "other" in answer.json()["error"]


def test_unknown_path_is_json_404(client: Client) -> None:
    answer = client.get("/v2/nothing/here")
    assert answer.status_code == 404 and "error" in answer.json()


def test_wrong_method_is_json_405(client: Client) -> None:
    answer = client.get(INFER)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert "error" in answer.json()


ROW = [5.1, 3.5, 1.4, 0.2]

BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("body not an object", [1, 2], "JSON object"),
    ("no inputs", {"id": "x"}, "'inputs'"),
    ("empty inputs", {"inputs": []}, "'inputs'"),
    ("input not an object", {"inputs": [5]}, "inputs[0]"),
    ("input without a name", {"inputs": [{"shape": [1, 4], "datatype": "FP32", "data": ROW}]}, "'name'"),
    ("unknown input", iris_input([ROW], name="pixels"), "input 'pixels'"),
    ("input twice", {"inputs": iris_input([ROW])["inputs"] * 2}, "more than once"),
    ("wrong datatype", iris_input([ROW], datatype="FP64"), "datatype FP64 does not match"),
    ("datatype missing", iris_input([ROW], datatype=None), "'datatype'"),
    ("shape not a list", iris_input([ROW], shape="1x4"), "'shape'"),
    ("negative dimension", iris_input([ROW], shape=[-1, 4]), "non-negative"),
    ("wrong rank", iris_input([ROW], shape=[4]), "rank 1"),
    ("fixed dimension differs", iris_input([ROW], shape=[2, 2]), "dimension 1 must be 4"),
    ("too little data", iris_input([ROW], data=ROW[:3]), "3 elements"),
    ("too much data", iris_input([ROW], data=ROW * 2), "8 elements"),
    ("nested data of another shape", iris_input([ROW, ROW], data=[ROW[:2]] * 4), "nested 'data'"),
    ("ragged data", iris_input([ROW], data=[[1, 2], [3]]), "ragged"),
    ("strings for numbers", iris_input([ROW], data=["a", "b", "c", "d"]), "not valid FP32"),
    ("booleans for numbers", iris_input([ROW], data=[True, False, True, False]), "not valid FP32"),
    ("nulls for numbers", iris_input([ROW], data=[1.0, None, 2.0, 3.0]), "not valid FP32"),
    ("data not a list", iris_input([ROW], data=5.0), "'data' must be a list"),
    ("id not a string", {"id": 5, **iris_input([ROW])}, "'id'"),
    ("unknown output", {**iris_input([ROW]), "outputs": [{"name": "logits"}]}, "output 'logits'"),
]


@pytest.mark.parametrize(
    ("request_body", "reason"), [(b, r) for _, b, r in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_are_400_with_a_reason(client: Client, request_body: Any, reason: str) -> None:
    answer = client.post(INFER, json=request_body)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]


def test_bad_requests_name_the_input(client: Client) -> None:
    for body in (
        iris_input([ROW], datatype="INT32"),
        iris_input([ROW], shape=[1, 5]),
        iris_input([ROW], data=ROW[:2]),
    ):
        assert "input 'input'" in client.post(INFER, json=body).json()["error"]


def test_missing_input_is_400(make_replica: MakeReplica, make_client: MakeClient, int64_path: Path) -> None:
    ints = make_client(make_replica(int64_path, name="ints"))
    request = {"inputs": [{"name": "ids", "shape": [1], "datatype": "INT64", "data": [1]}]}
    answer = ints.post("/v2/models/ints/infer", json=request)
    assert answer.status_code == 400 and "input 'offset': missing" in answer.json()["error"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [([1.5], "not valid INT64"), ([2**63], "not valid INT64"), ([True], "not valid INT64")],
)
def test_integer_inputs_are_checked(
    make_replica: MakeReplica, make_client: MakeClient, int64_path: Path, data: list[Any], reason: str
) -> None:
    ints = make_client(make_replica(int64_path, name="ints"))
    request = {
        "inputs": [
            {"name": "ids", "shape": [1], "datatype": "INT64", "data": data},
            {"name": "offset", "shape": [1], "datatype": "INT64", "data": [0]},
        ]
    }
    answer = ints.post("/v2/models/ints/infer", json=request)
    assert answer.status_code == 400 and reason in answer.json()["error"]


def test_numbers_for_bytes_are_400(
    make_replica: MakeReplica, make_client: MakeClient, strings_path: Path
) -> None:
    words = make_client(make_replica(strings_path, name="words"))
    request = {"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "data": ["a", 1]}]}
    answer = words.post("/v2/models/words/infer", json=request)
    assert answer.status_code == 400 and "not valid BYTES" in answer.json()["error"]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_malformed_json_is_400(client: Client, body: bytes) -> None:
    answer = client.post(INFER, content=body)
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def test_empty_batch_is_served(client: Client) -> None:
    answer = client.post(INFER, json=iris_input([], shape=[0, 4]))
    assert answer.status_code == 200
    assert answer.json()["outputs"][0] == {"name": "label", "datatype": "INT64", "shape": [0], "data": []}


def test_hostile_bodies_are_client_errors_never_500(client: Client) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    for body in (nested, b'{"inputs": [NaN]}', b"\xff\xfe"):
        answer = client.post(INFER, content=body)
        assert answer.status_code == 400, body[:20]
        assert "error" in answer.json()
    nan_rows = iris_input([[1.0, 2.0, 3.0, 4.0]])
    raw = json.dumps(nan_rows).replace("1.0", "NaN").encode()
    assert client.post(INFER, content=raw).status_code == 400
    huge = iris_input([[1.0, 2.0, 3.0, 4.0]])
    raw = json.dumps(huge).replace("1.0", "1e999").encode()
    assert client.post(INFER, content=raw).status_code == 400
    assert client.post("/_polycloud/faults", content=nested).status_code == 400


def test_non_finite_outputs_are_a_422_in_valid_json(
    make_replica: MakeReplica, make_client: MakeClient, matmul: Matmul
) -> None:
    mm = make_client(make_replica(matmul[0], name="mm"))
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [3e38, 3e38, 3e38]}]}

    answer = mm.post("/v2/models/mm/infer", json=body)

    assert answer.status_code == 422
    assert "NaN or infinite" in json.loads(answer.text)["error"]
