"""A SQLite state database and its -wal/-shm files are 0600 even when the process umask is loose: they
hold the audit trail, token hashes and secret ciphertexts."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from polycloud.homefiles import RunInfo, ensure_home, write_runinfo, write_token
from polycloud.state import Store


@pytest.fixture
def loose_umask() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def modes(root: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_a_new_database_and_its_journal_are_private(loose_umask: None, tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'home' / 'state.db'}") as store:
        store.create_token(name="t", role="admin", project=None, expires_at=None)
        found = modes(tmp_path / "home")
    assert found == {"home": 0o700, "state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}


def test_a_loose_database_of_an_older_polycloud_is_tightened(loose_umask: None, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store.open(f"sqlite:///{path}").close()
    for each in tmp_path.iterdir():
        each.chmod(0o644)
    Store.open(f"sqlite:///{path}").close()
    assert {name: mode for name, mode in modes(tmp_path).items() if name.startswith("state")} == {
        name: 0o600 for name in os.listdir(tmp_path) if name.startswith("state")
    }


def test_home_files_are_private_whatever_the_umask(loose_umask: None, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_token(home, "secret")
    write_runinfo(home, RunInfo(1, "http://a", "http://g"))
    write_runinfo(home, RunInfo(1, "http://a", "http://g"), "servers/s.json")
    assert modes(home) == {
        "home": 0o700,
        "admin.token": 0o600,
        "control-plane.json": 0o600,
        "servers": 0o700,
        "s.json": 0o600,
    }
    home.chmod(0o755)
    ensure_home(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
