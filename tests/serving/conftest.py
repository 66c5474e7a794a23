"""Fixtures for the model-server tests: tiny ONNX graphs built with onnx.helper, the example models,
replicas and an in-process HTTP client of the iris replica."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from polycloud.serving.app import Replica, ServedModel, create_app
from polycloud.serving.faults import Faults, FaultSettings
from polycloud.serving.metrics import ReplicaLabels, ReplicaMetrics
from polycloud.serving.model import load_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MODELS = ROOT / "examples" / "fleet" / "models"

MakeReplica = Callable[..., Replica]
Matmul = tuple[Path, "np.ndarray[Any, Any]", "np.ndarray[Any, Any]"]


def _save(graph: Any, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def matmul(tmp_path: Path) -> Matmul:
    """y = x @ w + b: input `x` FP32 [batch, 3] (dynamic batch), output `y` FP32 [batch, 2].

    Returns:
        The model file, w and b.
    """
    weights = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    bias = np.array([0.5, -0.5], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    return _save(graph, tmp_path / "matmul.onnx"), weights, bias


@pytest.fixture
def int64_path(tmp_path: Path) -> Path:
    """Two INT64 inputs `ids` [n] and `offset` [1]; output `shifted` = ids + offset, INT64 [n]."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["ids", "offset"], ["shifted"])],
        "int64",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("offset", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("shifted", TensorProto.INT64, [None])],
    )
    return _save(graph, tmp_path / "int64.onnx")


@pytest.fixture
def strings_path(tmp_path: Path) -> Path:
    """Identity over a string tensor: input `words` BYTES [n], output `same` BYTES [n]."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["words"], ["same"])],
        "strings",
        [helper.make_tensor_value_info("words", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, [None])],
    )
    return _save(graph, tmp_path / "strings.onnx")


@pytest.fixture
def iris_path() -> Path:
    """The example iris model (input `input` FP32 [-1, 4]; outputs `label`, `probabilities`)."""
    return EXAMPLE_MODELS / "iris.onnx"


@pytest.fixture
def cancer_path() -> Path:
    """The example breast-cancer model (input `input` FP32 [-1, 30])."""
    return EXAMPLE_MODELS / "cancer.onnx"


@pytest.fixture
def train_module() -> ModuleType:
    """`examples/models/train.py` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "polycloud_example_train", ROOT / "examples/models/train.py"
    )
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load examples/models/train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_replica() -> Iterator[MakeReplica]:
    """Build replicas: `make_replica(path, name="svc", delay_ms=0, error_rate=0, seed=7)`.

    Each serves revision "3" in cluster "test-a"; its inference threads are stopped at teardown.
    """
    made: list[Replica] = []

    def make(
        path: Path, name: str = "svc", delay_ms: float = 0.0, error_rate: float = 0.0, seed: int = 7
    ) -> Replica:
        served = ServedModel(name, "3", load_model(path))
        faults = Faults(FaultSettings(delay_ms, error_rate), random.Random(seed))
        replica = Replica(served, faults, ReplicaMetrics(ReplicaLabels(name, "test-a", "3")))
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.close()


@pytest.fixture
def replica(make_replica: MakeReplica, iris_path: Path) -> Replica:
    """A replica serving the example iris model as `species`."""
    return make_replica(iris_path, name="species")


class Client:
    """A synchronous in-process HTTP client of a replica's ASGI app (httpx's ASGI transport)."""

    def __init__(self, replica: Replica) -> None:
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=create_app(replica))
        self._http = httpx.AsyncClient(transport=transport, base_url="http://replica")

    def get(self, path: str) -> httpx.Response:
        """GET `path`."""
        return self._runner.run(self._http.get(path))

    def post(self, path: str, json: Any = None, content: bytes | None = None) -> httpx.Response:
        """POST `json` (or raw `content`) to `path`."""
        return self._runner.run(self._http.post(path, json=json, content=content))

    def close(self) -> None:
        """Close the client and its event loop."""
        self._runner.run(self._http.aclose())
        self._runner.close()


@pytest.fixture
def make_client() -> Iterator[Callable[[Replica], Client]]:
    """Build in-process clients of replicas; all are closed at teardown."""
    made: list[Client] = []

    def make(replica: Replica) -> Client:
        made.append(Client(replica))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(replica: Replica, make_client: Callable[[Replica], Client]) -> Client:
    """An in-process HTTP client of the iris replica."""
    return make_client(replica)
