"""Envelope encryption of one secret, and `KeyWrapper`, the protocol a master key sits behind.

Sealing a value: a fresh 256-bit data key and a 96-bit nonce encrypt it with AES-GCM; the master key
wraps the data key (`KeyWrapper.wrap`). Both layers take the secret's (project, name) as associated
data, so ciphertext moved to another row, or a wrapped key swapped between rows, fails to open instead
of decrypting as the wrong secret. Rotating the master key re-wraps data keys only: values are never
re-encrypted, and a KMS never sees them.
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from polycloud.errors import PermanentError
from polycloud.state.records import SealedSecret

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
_CONTEXT = b"polycloud/secret/v1"


class SecretUnreadable(PermanentError):
    """A secret's ciphertext does not open: wrong or missing master key, or tampered data."""


class KeyWrapper(Protocol):
    """A master key that wraps data keys: local (`LocalKeyWrapper`) or a cloud KMS.

    `context` must be given back unchanged to `unwrap`; a KMS passes it as its encryption context.
    """

    @property
    def key_id(self) -> str:
        """The id of the key `wrap` uses now."""
        ...

    def wrap(self, data_key: bytes, context: bytes) -> tuple[bytes, str]:
        """Encrypt `data_key`; returns the wrapped key and the id of the master key used."""
        ...

    def unwrap(self, wrapped: bytes, key_id: str, context: bytes) -> bytes:
        """Decrypt a data key wrapped by master key `key_id`.

        Raises:
            SecretUnreadable: That master key is not available, or the data does not authenticate.
        """
        ...


def binding(name: str, project: str | None) -> bytes:
    """The associated data that ties ciphertext to one secret."""
    return b"\0".join((_CONTEXT, (project or "").encode(), name.encode()))


def seal_secret(value: str, name: str, project: str | None, wrapper: KeyWrapper) -> SealedSecret:
    """Encrypt `value` under a fresh data key, and wrap that key with `wrapper`."""
    context = binding(name, project)
    data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, value.encode("utf-8"), context)
    wrapped, key_id = wrapper.wrap(data_key, context)
    return SealedSecret(name, project, wrapped, nonce, ciphertext, key_id)


def open_secret(sealed: SealedSecret, wrapper: KeyWrapper) -> str:
    """The value of a sealed secret.

    Raises:
        SecretUnreadable: The master key is missing or the data was tampered with.
    """
    context = binding(sealed.name, sealed.project)
    data_key = wrapper.unwrap(sealed.wrapped_key, sealed.key_id, context)
    try:
        plain = AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, context)
    except (InvalidTag, ValueError) as e:
        raise SecretUnreadable(f"secret {_label(sealed)} does not authenticate (tampered?)") from e
    return plain.decode("utf-8")


def rewrap(sealed: SealedSecret, old: KeyWrapper, new: KeyWrapper) -> tuple[bytes, str]:
    """The secret's data key unwrapped by `old` and wrapped by `new`, with the new key's id."""
    context = binding(sealed.name, sealed.project)
    return new.wrap(old.unwrap(sealed.wrapped_key, sealed.key_id, context), context)


def _label(sealed: SealedSecret) -> str:
    return f"{sealed.project}/{sealed.name}" if sealed.project else repr(sealed.name)
