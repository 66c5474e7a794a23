"""`LocalKeyWrapper`: master keys held by the control plane itself, from the environment or a key file.

Where the keys come from, first match wins:

- `POLYCLOUD_MASTER_KEY`: base64 of 32 bytes; several comma-separated keys form a key ring whose first
  key wraps and whose others still unwrap (rotate by putting a new key first, running
  `polycloud secret rotate-master`, then dropping the old one);
- `$POLYCLOUD_HOME/master.key`: created on first use with mode 0600; `rotate` replaces it.

A rotation of the key file is crash-safe: the new key is written to `master.key.next` before any row
changes, both keys unwrap while it exists, and the file replaces `master.key` (atomically) only after
the database committed. A rotation that died half way is finished by the next one with the same key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from polycloud.errors import UserError
from polycloud.secrets.crypto import NONCE_BYTES, KeyWrapper, SecretUnreadable

KEY_BYTES = 32
KEY_FILE = "master.key"
NEXT_FILE = "master.key.next"


def key_id_of(key: bytes) -> str:
    """A stable, non-secret name of a master key (a hash of it, not the key)."""
    return hashlib.sha256(b"polycloud/master-key-id\0" + key).hexdigest()[:16]


def decode_key(text: str, where: str) -> bytes:
    """A master key from its base64 text.

    Raises:
        UserError: Not base64 of exactly 32 bytes.
    """
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise UserError(
            f"{where} must be base64 of {KEY_BYTES} random bytes (e.g. `openssl rand -base64 32`)"
        )
    return key


def _read_key_file(path: Path) -> bytes | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(f"{path} is readable by others: `chmod 600 {path}` before polycloud uses it")
    return decode_key(path.read_text(encoding="ascii", errors="replace"), str(path))


def _write_key_file(path: Path, key: bytes, *, exclusive: bool) -> None:
    """Write a key file with mode 0600 from the start, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(base64.b64encode(key).decode("ascii") + "\n")
        f.flush()
        os.fsync(f.fileno())


def _create_key_file(path: Path) -> None:
    """Create the key file whole or not at all: a reader never sees it half written."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_key_file(draft, os.urandom(KEY_BYTES), exclusive=False)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    finally:
        draft.unlink()


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalKeyWrapper:
    """AES-256-GCM key wrapping with a ring of local master keys; the first one wraps."""

    def __init__(self, keys: list[bytes], *, key_file: Path | None = None) -> None:
        """Use `keys`, the first to wrap; `key_file` is the file `rotate` replaces (None: no file)."""
        if not keys:
            raise UserError("a key wrapper needs at least one master key")
        self._keys = {key_id_of(k): k for k in keys}
        self._current = key_id_of(keys[0])
        self._key_file = key_file

    @classmethod
    def load(cls, env_value: str | None, home: Path) -> LocalKeyWrapper:
        """The key ring from `POLYCLOUD_MASTER_KEY` (`env_value`) if set, else from the home's key file.

        The key file is created (0600) when it does not exist yet.

        Raises:
            UserError: A malformed key, or a key file that others may read.
        """
        if env_value and env_value.strip():
            parts = [p for p in env_value.split(",") if p.strip()]
            return cls([decode_key(p, "POLYCLOUD_MASTER_KEY") for p in parts])
        path = home / KEY_FILE
        key = _read_key_file(path)
        if key is None:
            _create_key_file(path)
            key = _read_key_file(path)
        if key is None:
            raise UserError(f"cannot create the master key file {path}")
        pending = _read_key_file(home / NEXT_FILE)
        return cls([key] if pending is None else [key, pending], key_file=path)

    @property
    def key_id(self) -> str:
        """The id of the master key that wraps."""
        return self._current

    @property
    def key_ids(self) -> list[str]:
        """Every master key id this ring can unwrap with, the wrapping one first."""
        return [self._current, *(k for k in self._keys if k != self._current)]

    def derive(self, key_id: str, label: bytes) -> bytes:
        """A 32-byte key for `label`, derived (HMAC-SHA256) from master key `key_id`.

        Raises:
            SecretUnreadable: This ring does not hold `key_id`.
        """
        key = self._keys.get(key_id)
        if key is None:
            raise SecretUnreadable(f"master key {key_id} is not available")
        return hmac.new(key, b"polycloud/derived\0" + label, hashlib.sha256).digest()

    def wrap(self, data_key: bytes, context: bytes) -> tuple[bytes, str]:
        """Encrypt a data key with the current master key: nonce ‖ ciphertext ‖ tag."""
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + AESGCM(self._keys[self._current]).encrypt(nonce, data_key, context)
        return wrapped, self._current

    def unwrap(self, wrapped: bytes, key_id: str, context: bytes) -> bytes:
        """Decrypt a data key wrapped by master key `key_id`."""
        key = self._keys.get(key_id)
        if key is None:
            raise SecretUnreadable(
                f"master key {key_id} is not available (POLYCLOUD_MASTER_KEY or master.key changed?)"
            )
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except (InvalidTag, ValueError) as e:
            raise SecretUnreadable("a wrapped data key does not authenticate (tampered?)") from e

    def rotate(self, rewrap_all: Callable[[KeyWrapper], int]) -> int:
        """Re-wrap every data key under a new master key; returns how many were re-wrapped.

        With a key file: a new key (or the pending one of a rotation that died) is saved as
        `master.key.next`, `rewrap_all(new)` re-wraps in one transaction, then the file replaces
        `master.key`. With `POLYCLOUD_MASTER_KEY`: every data key is re-wrapped under the first key.
        """
        if self._key_file is None:
            return rewrap_all(self)
        pending = self._key_file.with_name(NEXT_FILE)
        new_key = _read_key_file(pending)
        if new_key is None:
            new_key = os.urandom(KEY_BYTES)
            _write_key_file(pending, new_key, exclusive=False)
        self._keys[key_id_of(new_key)] = new_key
        count = rewrap_all(LocalKeyWrapper([new_key]))
        os.replace(pending, self._key_file)
        _sync_folder(self._key_file.parent)
        self._keys = {key_id_of(new_key): new_key}
        self._current = key_id_of(new_key)
        return count
