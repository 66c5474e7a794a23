"""Everything under a polycloud home is its user's alone (files 0600, folders 0700), whatever the umask
of whoever ran `polycloud`: the state database and its -wal/-shm (audit trail, token hashes, secret
ciphertexts), logs, traces, run files, locks, the admin token, replica records."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import Polycloud
from tests.e2e.fleets import Fleet, ServiceDecl

pytestmark = pytest.mark.e2e


def readable_by_others(home: Path) -> list[str]:
    """Every path under `home` (and `home` itself) that its group or others may read, write or enter."""
    found = []
    for path in [home, *home.rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:  # a temporary file renamed meanwhile
            continue
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{oct(mode & 0o777)} {path.relative_to(home.parent)}")
    return found


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask (0644 files, 0755 folders) for the processes the test starts."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def test_a_home_made_by_the_cli_is_private_whatever_the_umask(
    loose_umask: None, polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    fleet = Fleet(tmp_path, model, ("acme",), (ServiceDecl("alpha", ("acme",), replicas=1),))
    polycloud.ok("apply", fleet.write(), "--yes")  # starts the control plane, its gateway, a replica
    polycloud.expect_exactly(fleet)
    assert polycloud.api_status()["services"]
    home = polycloud.home
    names = {p.name for p in home.rglob("*")}
    assert {"state.db", "state.db-wal", "admin.token", "control-plane.json", "logs"} <= names
    assert any(p.suffix == ".log" for p in (home / "logs").iterdir())
    assert not readable_by_others(home), "\n".join(readable_by_others(home))


def test_an_existing_loose_home_is_tightened(loose_umask: None, polycloud: Polycloud) -> None:
    home = polycloud.home
    home.mkdir(mode=0o755)
    (home / "state.db").touch(mode=0o644)
    os.chmod(home, 0o755)  # as an older polycloud left it
    os.chmod(home / "state.db", 0o644)
    polycloud.ok("up", "--detach")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "state.db").stat().st_mode) == 0o600
