"""Opening the store: migrations, bad URLs, and several stores or processes sharing one database."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from polycloud.errors import UserError
from polycloud.state import Store, WorkloadInput, content_hash
from polycloud.state.migrating import HEAD, current_revision, head_revision, upgrade
from polycloud.state.tables import Base

from .support import workload


def shared(author: str, i: int) -> WorkloadInput:
    spec = {"from": author, "i": i}
    return WorkloadInput("shared", "Service", spec, content_hash(spec), [], None)


def test_sqlite_gets_its_folder_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "home" / "state.db"
    with Store.open(f"sqlite:///{path}") as store, store.engine.connect() as connection:
        assert path.is_file()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_running_migrations_twice_is_a_no_op(open_store: Callable[[], Store]) -> None:
    store = open_store()
    store.apply(workloads=[workload("fraud")], documents=[], author="a", message="m")
    upgrade(store.engine)
    again = open_store()

    assert head_revision() == HEAD
    with again.engine.connect() as connection:
        assert current_revision(connection) == HEAD
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]
    assert [w.name for w in again.current()] == ["fraud"]


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_a_database_migrated_by_a_newer_polycloud_is_refused(db_url: str, store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(UserError, match="schema unknown to this polycloud"):
        Store.open(db_url)


def test_two_stores_share_one_database(open_store: Callable[[], Store]) -> None:
    api, cli = open_store(), open_store()
    api.apply(workloads=[workload("fraud", 1)], documents=[], author="api", message="m")
    assert [w.number for w in cli.current()] == [1]
    cli.apply(workloads=[workload("fraud", 2)], documents=[], author="cli", message="m")
    assert [(r.number, r.author) for r in api.history("fraud")] == [(1, "api"), (2, "cli")]
    token, _ = api.create_token(name="t", role="viewer", project=None, expires_at=None)
    assert cli.authenticate(token) is not None


def test_concurrent_writers_in_threads_number_revisions_without_gaps(open_store: Callable[[], Store]) -> None:
    stores = [open_store(), open_store()]

    def write(n: int) -> None:
        author = f"t{n}"
        for i in range(8):
            item = shared(author, i)
            stores[n % 2].apply(workloads=[item], documents=[], author=author, message="", prune=False)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(write, n) for n in range(4)]:
            future.result(timeout=60)
    assert [r.number for r in stores[0].history("shared")] == list(range(1, 33))


WRITER = textwrap.dedent(
    """
    import sys
    from polycloud.state import Store, WorkloadInput, content_hash

    url, author = sys.argv[1], sys.argv[2]
    with Store.open(url) as store:
        for i in range(4):
            for name in (f"own-{author}", "shared"):
                spec = {"from": author, "i": i}
                item = WorkloadInput(name, "Service", spec, content_hash(spec), [], None)
                store.apply(workloads=[item], documents=[], author=author, message=str(i), prune=False)
    """
)


def test_concurrent_processes_open_and_write_one_database(
    db_url: str, open_store: Callable[[], Store]
) -> None:
    # The processes race to create the schema too: nothing exists before they start.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, f"p{n}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for n in range(3)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes

    store = open_store()
    assert [r.number for r in store.history("shared")] == list(range(1, 13))
    for n in range(3):
        history = store.history(f"own-p{n}")
        assert [(r.number, r.spec["i"], r.author) for r in history] == [(i + 1, i, f"p{n}") for i in range(4)]


def test_an_unreachable_postgres_gives_a_clean_user_error() -> None:
    with pytest.raises(UserError) as caught:
        Store.open("postgresql+psycopg://polycloud:s3cret@127.0.0.1:1/test")
    message = str(caught.value)
    assert message.startswith(
        "cannot open the state database postgresql+psycopg://polycloud:***@127.0.0.1:1/test:"
    )
    assert "s3cret" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("not a url", "invalid database URL"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
        ("mysql://root:pw@localhost/db", "unsupported database 'mysql://root:\\*\\*\\*@localhost/db'"),
    ],
)
def test_unusable_urls_give_user_errors(url: str, complaint: str) -> None:
    with pytest.raises(UserError, match=complaint):
        Store.open(url)


def test_a_file_that_is_not_a_database_gives_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(
        UserError, match=r"cannot open the state database sqlite:///.*: file is not a database"
    ):
        Store.open(f"sqlite:///{path}")
