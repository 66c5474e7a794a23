"""Fixtures of the placement tests: the shipped catalog, loaded once."""

from __future__ import annotations

import pytest

from polycloud.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The shipped catalog (package data only)."""
    return load_catalog()


def pytest_configure(config: pytest.Config) -> None:
    """Register `planner_bug`: a test that pins a known planner bug and fails until src/ is fixed."""
    config.addinivalue_line(
        "markers", "planner_bug: reproduces a known planner bug; it fails until the planner is fixed"
    )
