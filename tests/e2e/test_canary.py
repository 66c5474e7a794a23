"""Canary rollouts end to end: real replicas, real gateway, real load, the real CLI.

- A new model is rolled out step by step (50 % → 100 %) and promoted: every replica ends on the new
  revision and answers with the new model's outputs.
- A model that fails every inference is caught by the gateways' per-revision counts and rolled back
  automatically (a new revision restores the baseline); `apply` says so and exits 1.
- Through both, every client request answers 200: a failed canary attempt is retried on the baseline.
- An operator pauses, resumes and aborts a rollout; abort restores the baseline.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest
import yaml
from onnx import TensorProto, helper
from tests.e2e.conftest import Fleet, Polycloud
from tests.e2e.fleets import ServiceDecl
from tests.support import wait_until

pytestmark = pytest.mark.e2e

SERVICE = "alpha"
ROLLOUT = {"steps": [50, 100], "bakeSeconds": 2, "maxErrorRate": 0.05}
X = [[1.0, 2.0, 3.0, 4.0]]


def _model(path: Path, scale: float) -> Path:
    """Y = X @ (scale · W): each scale is a different, working model."""
    weights = [scale * v for v in (1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0)]
    return _save(path, [helper.make_node("MatMul", ["X", "W"], ["Y"])], weights)


def _broken(path: Path) -> Path:
    """Loads and reports ready, then fails every inference (4 values cannot be reshaped to [3, -1])."""
    nodes = [helper.make_node("Reshape", ["X", "S"], ["Y"])]
    shape = helper.make_tensor("S", TensorProto.INT64, [2], [3, -1])
    return _save(path, nodes, None, extra=[shape])


def _save(
    path: Path,
    nodes: list[onnx.NodeProto],
    weights: list[float] | None,
    extra: list[onnx.TensorProto] | None = None,
) -> Path:
    init = list(extra or [])
    if weights is not None:
        init.append(helper.make_tensor("W", TensorProto.FLOAT, [4, 2], weights))
    graph = helper.make_graph(
        nodes,
        "canary",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [-1, -1])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _write(fleet: Fleet, model: Path, name: str, bake_s: float = 2) -> Path:
    docs = fleet.documents()
    for doc in docs:
        if doc["kind"] == "Service":
            doc["spec"]["model"] = {"path": str(model)}
            doc["spec"]["rollout"] = {**ROLLOUT, "bakeSeconds": bake_s}
    path = fleet.root / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


class Load:
    """Requests through the gateway from a thread, about 60 per second, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/v2/models/{SERVICE}/infer"
        self.statuses: list[int] = []
        self.outputs: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": X}]}
        with httpx.Client(timeout=10) as http:
            while not self._stop.wait(1 / 60):
                answer = http.post(self.url, json=body)
                self.statuses.append(answer.status_code)
                if answer.status_code == 200:
                    self.outputs.append(answer.json()["outputs"][0]["data"])


def _rollouts(polycloud: Polycloud) -> list[dict[str, Any]]:
    result = polycloud.ok("rollout", "status", SERVICE, "--json")
    rollouts: list[dict[str, Any]] = yaml.safe_load(result.stdout)["rollouts"]
    return rollouts


def _revisions(status: dict[str, Any]) -> set[str]:
    svc = next(s for s in status["services"] if s["name"] == SERVICE)
    return {r["revision"] for c in svc["clusters"] for r in c["replicas"]}


@pytest.fixture
def one_service(fleet: Fleet) -> Fleet:
    return Fleet(fleet.root, fleet.model, ("site0",), (ServiceDecl(SERVICE, ("site0",), 2),))


def test_canary_promotes_a_good_model_and_rolls_back_a_broken_one(
    polycloud: Polycloud, one_service: Fleet, tmp_path: Path
) -> None:
    fleet = one_service
    polycloud.ok("apply", _write(fleet, _model(tmp_path / "v1.onnx", 1.0), "v1.yaml"), "--yes")
    gateway = polycloud.status()["gateway"]["url"]
    with Load(gateway) as load:
        wait_until(lambda: len(load.statuses) > 20, what="load to flow")
        polycloud.ok("apply", _write(fleet, _model(tmp_path / "v2.onnx", 2.0), "v2.yaml"), "--yes")
        promoted = _rollouts(polycloud)[0]
        assert promoted["state"] == "succeeded", promoted
        assert (promoted["baselineRevision"], promoted["canaryRevision"]) == ("r1", "r2")
        assert promoted["figures"]["canary"]["attempts"] > 0
        assert _revisions(polycloud.status()) == {"r2"}
        seen = len(load.outputs)
        wait_until(lambda: len(load.outputs) > seen + 10, what="answers from the new model")
        assert load.outputs[-1] == [8.0, 12.0]  # 2 · [4, 6]

        broken = polycloud.cli("apply", _write(fleet, _broken(tmp_path / "v3.onnx"), "v3.yaml"), "--yes")
        assert broken.rc == 1, broken
        assert "rolled back to r2" in broken.stderr
        rolled = _rollouts(polycloud)[0]
        assert rolled["state"] == "rolled-back" and "error rate" in rolled["message"], rolled
        assert [r.message for r in polycloud.revisions(SERVICE)][-1].startswith("rolled back to r2")
        wait_until(lambda: _revisions(polycloud.status()) == {"r4"}, what="replicas back on the baseline")
        seen = len(load.outputs)
        wait_until(lambda: len(load.outputs) > seen + 10, what="answers after the rollback")
    assert set(load.statuses) == {200}, f"clients saw {sorted(set(load.statuses))}"
    assert load.outputs[-1] == [8.0, 12.0]


def test_an_operator_pauses_resumes_and_aborts_a_rollout(
    polycloud: Polycloud, one_service: Fleet, tmp_path: Path
) -> None:
    fleet = one_service
    polycloud.ok("apply", _write(fleet, _model(tmp_path / "v1.onnx", 1.0), "v1.yaml"), "--yes")
    slow = _write(fleet, _model(tmp_path / "v2.onnx", 3.0), "v2.yaml", bake_s=600)
    polycloud.ok("apply", slow, "--yes", "--no-wait")
    wait_until(lambda: _rollouts(polycloud), what="the rollout to start")
    paused = polycloud.ok("rollout", "pause", SERVICE)
    assert "paused" in paused.stdout
    assert polycloud.cli("rollout", "pause", SERVICE).rc == 1  # already paused: a clear error
    assert _rollouts(polycloud)[0]["state"] == "paused"
    polycloud.ok("rollout", "resume", SERVICE)
    assert _rollouts(polycloud)[0]["state"] == "progressing"
    aborted = polycloud.ok("rollout", "abort", SERVICE)
    assert "aborted" in aborted.stdout
    assert _rollouts(polycloud)[0]["state"] == "aborted"
    assert len(polycloud.revisions(SERVICE)) == 3  # r3 restores r1
    wait_until(lambda: _revisions(polycloud.status()) == {"r3"}, what="replicas back on the baseline")
    missing = polycloud.cli("rollout", "abort", SERVICE)
    assert missing.rc == 1 and "no rollout in progress" in missing.stderr
