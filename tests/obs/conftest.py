"""Fixtures of the observability tests: a store on a fresh SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polycloud.state import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated store on a fresh SQLite file."""
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as s:
        yield s
