"""Envelope encryption: fresh data keys, bound to the secret's name and project, wrapped by a master key."""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from polycloud.errors import UserError
from polycloud.secrets import LocalKeyWrapper, SecretUnreadable, open_secret, seal_secret
from polycloud.secrets.local import KEY_FILE, key_id_of


def wrapper() -> LocalKeyWrapper:
    return LocalKeyWrapper([os.urandom(32)])


def test_a_sealed_secret_opens_to_its_value_and_holds_no_plaintext() -> None:
    keys = wrapper()
    sealed = seal_secret("hunter2-ÿ", "db-password", "risk", keys)

    assert open_secret(sealed, keys) == "hunter2-ÿ"
    assert b"hunter2" not in sealed.ciphertext + sealed.wrapped_key + sealed.nonce
    assert sealed.key_id == keys.key_id


def test_every_secret_gets_its_own_data_key_and_nonce() -> None:
    keys = wrapper()
    one, two = (seal_secret("same", "a", None, keys) for _ in range(2))
    assert one.wrapped_key != two.wrapped_key
    assert one.nonce != two.nonce
    assert one.ciphertext != two.ciphertext


@pytest.mark.parametrize("moved", [{"name": "other"}, {"project": "other"}, {"project": None}])
def test_ciphertext_moved_to_another_name_or_project_does_not_open(moved: dict[str, str | None]) -> None:
    keys = wrapper()
    sealed = seal_secret("v", "db", "risk", keys)
    with pytest.raises(SecretUnreadable):
        open_secret(replace(sealed, **moved), keys)  # type: ignore[arg-type]


def test_swapped_wrapped_keys_do_not_open() -> None:
    keys = wrapper()
    a, b = seal_secret("va", "a", None, keys), seal_secret("vb", "b", None, keys)
    with pytest.raises(SecretUnreadable):
        open_secret(replace(a, wrapped_key=b.wrapped_key), keys)


def test_a_flipped_bit_does_not_open() -> None:
    keys = wrapper()
    sealed = seal_secret("value", "a", None, keys)
    broken = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(SecretUnreadable, match="does not authenticate"):
        open_secret(replace(sealed, ciphertext=broken), keys)


def test_another_master_key_cannot_open() -> None:
    sealed = seal_secret("value", "a", None, wrapper())
    with pytest.raises(SecretUnreadable, match="is not available"):
        open_secret(sealed, wrapper())


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = LocalKeyWrapper.load(None, tmp_path)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalKeyWrapper.load(None, tmp_path).key_id == first.key_id
    assert first.key_id == key_id_of(base64.b64decode(path.read_text()))


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    LocalKeyWrapper.load(None, tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(UserError, match="readable by others: `chmod 600"):
        LocalKeyWrapper.load(None, tmp_path)


def test_the_environment_key_ring_wraps_with_its_first_key(tmp_path: Path) -> None:
    new, old = os.urandom(32), os.urandom(32)
    sealed = seal_secret("v", "a", None, LocalKeyWrapper([old]))
    ring = ",".join(base64.b64encode(k).decode() for k in (new, old))
    keys = LocalKeyWrapper.load(ring, tmp_path)

    assert keys.key_id == key_id_of(new)
    assert open_secret(sealed, keys) == "v"
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_environment_key_is_a_clear_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UserError, match="POLYCLOUD_MASTER_KEY must be base64 of 32 random bytes"):
        LocalKeyWrapper.load(bad, tmp_path)
