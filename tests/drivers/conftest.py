"""Fixtures for driver tests: a home whose replica processes are all stopped at teardown, a model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support import build_model

from polycloud.drivers.local import LocalDriver, stop_all_replicas

from .support import home_processes


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh polycloud home; every replica process under it is stopped at teardown."""
    path = (tmp_path / "home").resolve()
    path.mkdir()
    try:
        yield path
    finally:
        stop_all_replicas(path, grace_s=2.0)
        for proc in home_processes(path):  # belt and braces: a test must never leak a process
            proc.kill()


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ONNX model."""
    return build_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture
def make_driver(home: Path) -> Iterator[Callable[[str], LocalDriver]]:
    """Create `LocalDriver`s on the test's home; they are closed at teardown."""
    made: list[LocalDriver] = []

    def make(cluster: str = "local-a") -> LocalDriver:
        driver = LocalDriver(cluster, home)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()
