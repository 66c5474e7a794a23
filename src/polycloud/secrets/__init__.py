"""Secrets with envelope encryption: a fresh AES-256-GCM data key per secret, wrapped by a master key.

    crypto    seal / open / rewrap one secret; `KeyWrapper`, the seam where a cloud KMS plugs in
    local     `LocalKeyWrapper`: master keys from POLYCLOUD_MASTER_KEY or $POLYCLOUD_HOME/master.key
    vault     `Vault`: set, list, delete, rotate the master key, and the reconciler's secret lookup

Values exist in the clear only in the control plane's memory and in the environment of the replicas
that use them; the state store holds ciphertext only.
"""

from polycloud.secrets.crypto import KeyWrapper, SecretUnreadable, open_secret, seal_secret
from polycloud.secrets.local import LocalKeyWrapper
from polycloud.secrets.vault import Vault

__all__ = ["KeyWrapper", "LocalKeyWrapper", "SecretUnreadable", "Vault", "open_secret", "seal_secret"]
