"""Fixtures of the policy tests: the shipped catalog, loaded once."""

from __future__ import annotations

import pytest

from polycloud.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()
