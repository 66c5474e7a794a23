"""Helpers shared by test folders: a tiny ONNX model and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import onnx
import pytest
from onnx import TensorProto, helper

from polycloud.controller.faulting import FaultSync
from polycloud.drivers.base import Fault
from polycloud.state import Store, TokenRecord

T = TypeVar("T")

EXAMPLE_MODEL = Path(__file__).resolve().parents[1] / "examples" / "fleet" / "models" / "iris.onnx"
"""A real ONNX model (iris) that API and policy tests can declare."""
WEST_SITE = """\
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: west}
spec:
  provider: acme
  region: lisbon
  location: {lat: 38.7, lon: -9.1, jurisdiction: EU}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
---
"""
"""A private site in Lisbon, as the first document of a fleet."""

WEIGHTS = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
"""Y = X @ WEIGHTS, so [1, 2, 3, 4] gives [4, 6]."""


def build_model(path: Path) -> Path:
    """Write a tiny ONNX model, X[-1,4] MatMul W[4,2] -> Y, to `path`."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [v for row in WEIGHTS for v in row])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [-1, 2])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def wait_until(
    check: Callable[[], T | None], timeout_s: float = 30.0, what: str = "condition", every_s: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail the test after `timeout_s` (a hang guard)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def viewer_token(project: str | None) -> TokenRecord:
    """A viewer's token record of `project` (None: fleet-wide), for code that only reads its scope."""
    return TokenRecord(
        id=1,
        name="t",
        role="viewer",
        project=project,
        created_at=datetime.now(UTC),
        expires_at=None,
        revoked=False,
    )


class FaultLog:
    """Stands in for the leader in API tests: each `wake` applies the recorded faults (`FaultSync`) to
    drivers that only keep what they carry, per cluster."""

    def __init__(self, store: Store) -> None:
        self._sync = FaultSync(store)
        self._drivers: dict[str, CarryingDriver] = {}

    def wake(self) -> None:
        self._sync.sync(_AnyCluster(self._drivers))

    def carried(self, cluster: str) -> list[Fault]:
        """The faults the cluster's driver carries now."""
        driver = self._drivers.get(cluster)
        return [] if driver is None else list(driver.carried)

    def injected(self) -> list[tuple[str, Fault]]:
        """Every fault ever injected, in order, with its cluster."""
        return [(name, f) for name, d in self._drivers.items() for f in d.injected]


class CarryingDriver:
    """A cluster driver with fault support that only remembers what it was told and what it carries."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.carried: list[Fault] = []
        self.injected: list[Fault] = []
        self.calls: list[str] = []

    def inject(self, fault: Fault) -> None:
        self.calls.append(f"inject {fault.kind}")
        self.injected.append(fault)
        if fault.kind != "kill":
            self.carried.append(fault)

    def clear_faults(self) -> None:
        self.calls.append("clear")
        self.carried = []


class _AnyCluster(Mapping[str, Any]):
    """A driver for whichever cluster is asked for (created on first use)."""

    def __init__(self, drivers: dict[str, CarryingDriver]) -> None:
        self._drivers = drivers

    def __getitem__(self, cluster: str) -> CarryingDriver:
        return self._drivers.setdefault(cluster, CarryingDriver(cluster))

    def __iter__(self) -> Iterator[str]:
        return iter(self._drivers)

    def __len__(self) -> int:
        return len(self._drivers)
