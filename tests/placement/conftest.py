"""Fixtures of the placement tests: the shipped catalog, loaded once."""

from __future__ import annotations

import pytest

from polycloud.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The shipped catalog (package data only)."""
    return load_catalog()
