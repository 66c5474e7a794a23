"""Fixtures for the secrets tests: a store on a fresh SQLite file and a local master key in its home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polycloud.secrets import LocalKeyWrapper, Vault
from polycloud.state import Store


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{home / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def vault(store: Store, home: Path) -> Vault:
    return Vault(store, LocalKeyWrapper.load(None, home), refresh_s=0.0)
