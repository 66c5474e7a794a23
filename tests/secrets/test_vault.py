"""The vault over a real store: set, list, delete, lookup by project, and master key rotation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from polycloud.errors import NotFoundError, UserError
from polycloud.secrets import LocalKeyWrapper, SecretUnreadable, Vault
from polycloud.secrets.local import KEY_FILE, NEXT_FILE
from polycloud.state import Store

VALUE = "s3cr3t-9f1c2a"


def test_values_are_stored_encrypted_and_listed_without_values(vault: Vault, store: Store) -> None:
    record = vault.set("db-password", VALUE, project="risk")
    assert (record.name, record.project, record.version) == ("db-password", "risk", 1)
    assert vault.set("db-password", VALUE + "x", project="risk").version == 2

    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM secrets")).all()
    assert len(rows) == 1
    assert all(VALUE.encode() not in (v if isinstance(v, bytes) else str(v).encode()) for v in rows[0])
    assert [(s.name, s.project, s.version) for s in vault.list()] == [("db-password", "risk", 2)]
    assert VALUE not in repr(vault.list())


def test_lookup_prefers_the_project_then_the_fleet_wide_secret(vault: Vault) -> None:
    vault.set("token", "global")
    vault.set("token", "for-risk", project="risk")

    assert vault.lookup("token", "risk") == "for-risk"
    assert vault.lookup("token", "other") == "global"
    assert vault.lookup("token", None) == "global"
    assert vault.lookup("missing", "risk") is None


def test_a_project_secret_is_not_visible_to_other_projects(vault: Vault) -> None:
    vault.set("only-risk", VALUE, project="risk")
    assert vault.lookup("only-risk", "fraud") is None
    assert vault.lookup("only-risk", None) is None


def test_delete_removes_the_secret(vault: Vault) -> None:
    vault.set("a", VALUE)
    vault.delete("a")
    assert vault.lookup("a", None) is None
    with pytest.raises(NotFoundError, match="no secret 'a' in project 'risk'"):
        vault.delete("a", "risk")


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("", "v", "secret name '' must be"),
        ("../etc", "v", "secret name '../etc' must be"),
        ("ok", "", "value is empty"),
        ("ok", "a\0b", "NUL"),
        ("ok", "x" * (64 * 1024 + 1), "at most 65536 bytes"),
    ],
)
def test_bad_names_and_values_are_refused_and_nothing_is_written(
    vault: Vault, name: str, value: str, complaint: str
) -> None:
    with pytest.raises(UserError, match=complaint):
        vault.set(name, value)
    assert vault.list() == []


def test_rotation_rewraps_every_data_key_and_replaces_the_key_file(vault: Vault, home: Path) -> None:
    for i in range(3):
        vault.set(f"s{i}", f"{VALUE}-{i}", project="p" if i else None)
    old_file = (home / KEY_FILE).read_text()
    old_id = vault.wrapper.key_id

    assert vault.rotate_master() == 3

    assert (home / KEY_FILE).read_text() != old_file
    assert stat.S_IMODE((home / KEY_FILE).stat().st_mode) == 0o600
    assert not (home / NEXT_FILE).exists()
    assert {s.key_id for s in vault.list()} == {vault.wrapper.key_id} != {old_id}
    fresh = Vault(vault.store, LocalKeyWrapper.load(None, home), refresh_s=0.0)
    assert [fresh.lookup(f"s{i}", "p" if i else None) for i in range(3)] == [f"{VALUE}-{i}" for i in range(3)]


def test_a_rotation_that_fails_in_the_database_changes_nothing(
    vault: Vault, store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.set("a", VALUE)
    vault.set("b", VALUE)
    before = (home / KEY_FILE).read_text()
    calls = 0
    real = store.rewrap_secrets

    def failing(rewrap):  # type: ignore[no-untyped-def]
        def second_fails(sealed):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 2:
                raise SecretUnreadable("boom")
            return rewrap(sealed)

        return real(second_fails)

    monkeypatch.setattr(store, "rewrap_secrets", failing)
    with pytest.raises(SecretUnreadable):
        vault.rotate_master()
    monkeypatch.undo()

    assert (home / KEY_FILE).read_text() == before
    fresh = Vault(store, LocalKeyWrapper.load(None, home), refresh_s=0.0)
    assert fresh.lookup("a", None) == fresh.lookup("b", None) == VALUE
    assert fresh.rotate_master() == 2  # finishes with the pending key
    assert not (home / NEXT_FILE).exists()
    again = Vault(store, LocalKeyWrapper.load(None, home), refresh_s=0.0)
    assert again.lookup("a", None) == VALUE


def test_a_crash_after_the_commit_loses_nothing(
    vault: Vault, store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.set("a", VALUE)

    def killed(*_: object) -> None:
        raise OSError("killed")

    # Die between the commit and the file replacement: the rows are under the pending key by then.
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        vault.rotate_master()
    monkeypatch.undo()

    assert (home / NEXT_FILE).exists()
    restarted = Vault(store, LocalKeyWrapper.load(None, home), refresh_s=0.0)
    assert restarted.lookup("a", None) == VALUE


def test_a_row_swapped_in_the_database_is_reported_and_treated_as_missing(vault: Vault, store: Store) -> None:
    vault.set("a", "value-a")
    vault.set("b", "value-b")
    with store.engine.begin() as connection:
        query = text("SELECT ciphertext, nonce, wrapped_key FROM secrets WHERE name='b'")
        b = connection.execute(query).one()
        connection.execute(
            text("UPDATE secrets SET ciphertext=:c, nonce=:n, wrapped_key=:w WHERE name='a'"),
            {"c": b[0], "n": b[1], "w": b[2]},
        )
    assert vault.lookup("a", None) is None
    assert vault.lookup("b", None) == "value-b"
    events = store.events()
    assert [e.reason for e in events] == ["SecretUnreadable"]
    assert "value-b" not in events[0].message
