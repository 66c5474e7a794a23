"""The train-then-serve example as a user runs it: an on-prem job writes a model that a cloud Service
then rolls out as a canary through the gateway, with every client request answered throughout."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import Polycloud

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train-then-serve"
SAMPLE = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [6.3, 3.3, 6.0, 2.5]}]}


def jobs(polycloud: Polycloud) -> dict[str, dict[str, Any]]:
    response = polycloud.api().get("/jobs")
    response.raise_for_status()
    return {j["name"]: j for j in response.json()["jobs"]}


def test_a_model_trained_on_prem_is_rolled_out_as_a_canary(polycloud: Polycloud, tmp_path: Path) -> None:
    example = shutil.copytree(EXAMPLE, tmp_path / "example", ignore=shutil.ignore_patterns("iris-v2.onnx"))
    for name in ("fleet.yaml", "fleet-v2.yaml"):  # shorter bakes: the test checks behaviour, not patience
        path = example / name
        path.write_text(path.read_text().replace("bakeSeconds: 10", "bakeSeconds: 2"))
    polycloud.ok("apply", example / "fleet.yaml", "--yes")
    polycloud.eventually(lambda: jobs(polycloud)["train-iris"]["state"] == "succeeded", "training to finish")
    assert (example / "models" / "iris-v2.onnx").is_file()
    assert "wrote" in polycloud.ok("jobs", "logs", "train-iris").stdout

    url = f"{polycloud.status()['gateway']['url']}/v2/models/iris/infer"
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.wait(0.02):
                statuses.append(http.post(url, json=SAMPLE).status_code)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        polycloud.ok("apply", example / "fleet-v2.yaml", "--yes")
    finally:
        stop.set()
        thread.join(10)
    rollout = json.loads(polycloud.ok("rollout", "status", "iris", "--json").stdout)["rollouts"][0]
    assert (rollout["state"], rollout["canaryRevision"]) == ("succeeded", "r2")
    assert rollout["figures"]["canary"]["attempts"] > 0
    assert statuses and set(statuses) == {200}
    answer = httpx.post(url, json=SAMPLE).json()
    assert answer["outputs"][0]["data"] == [2]  # a virginica, by the trained model
