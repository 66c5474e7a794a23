"""The keys every server of a fleet must share: the master key (secrets) and the fingerprint key.

The embedded default (`polycloud up` on SQLite) keeps both in its home, as files made on first start.
With PostgreSQL, servers on different machines must agree, so `POLYCLOUD_MASTER_KEY` is required, the
fingerprint key is derived from it rather than generated per home, and the database keeps the id (a
hash, not the key) of the master key its secrets use: a server started with another key refuses to
start instead of writing secrets no other server can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from polycloud.controller.desired import fingerprint_key
from polycloud.errors import UserError
from polycloud.secrets import LocalKeyWrapper
from polycloud.state import Store

MASTER_KEY_ID = "master-key-id"
"""The control setting naming the master key of the fleet's secrets."""
FINGERPRINT_LABEL = b"fingerprint"
GENERATE_HINT = "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"


@dataclass(frozen=True)
class FleetKeys:
    """The master key ring and the key of replica environment fingerprints."""

    wrapper: LocalKeyWrapper
    fingerprint: bytes


def fleet_keys(master_key: str | None, home: Path, store: Store, *, shared: bool) -> FleetKeys:
    """The keys of this server; `shared` (PostgreSQL) makes the master key required and checked.

    Raises:
        UserError: Shared without `POLYCLOUD_MASTER_KEY`, or with one that is not the fleet's.
    """
    if not shared:
        return FleetKeys(LocalKeyWrapper.load(master_key, home), fingerprint_key(home))
    if not master_key or not master_key.strip():
        raise UserError(
            "POLYCLOUD_MASTER_KEY is required with PostgreSQL: every server of the fleet must share it "
            f"(make one with {GENERATE_HINT})"
        )
    wrapper = LocalKeyWrapper.load(master_key, home)
    fleet_key = store.settle_control_setting(MASTER_KEY_ID, wrapper.key_id)
    if fleet_key not in wrapper.key_ids:
        raise UserError(
            f"POLYCLOUD_MASTER_KEY (key id {wrapper.key_id}) is not the master key of this database's "
            f"secrets (key id {fleet_key}): start every server with the same key"
        )
    return FleetKeys(wrapper, wrapper.derive(fleet_key, FINGERPRINT_LABEL))
