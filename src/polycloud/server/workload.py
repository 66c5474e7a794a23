"""`WorkloadIssuer`: the keys that sign workload identity tokens, kept like the fleet CA's.

Each key's public half is a shared setting (`workload-key/0001`, ...: its kid, JWK and creation time);
its private half is sealed with the master key in the reserved project `_polycloud`, so rotating the
master key re-wraps it too. Creating a key is race-free among servers: each seals its candidate under
a name carrying the kid, then settles the setting; the one that stands names its own key. The schedule
(which key signs, which are published) is `polycloud.pki.workload`'s: every server computes the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from polycloud.errors import NotFoundError, PermanentError
from polycloud.pki import workload as wl
from polycloud.secrets.crypto import KeyWrapper, SecretUnreadable, open_secret, seal_secret
from polycloud.server.certs import RESERVED_PROJECT
from polycloud.spec.models import Cluster
from polycloud.state import Store

log = logging.getLogger(__name__)

KEY_SETTING = "workload-key/"
REFRESH_S = 10.0
"""How long a server trusts its cached view of the keys (a rotation by another server shows up then)."""


def _sealed_name(number: int, kid: str) -> str:
    return f"workload-key-{number:04d}-{kid[:16]}"


class WorkloadIssuer:
    """polycloud's OpenID issuer for its workloads, as every server sees it. Thread-safe."""

    def __init__(
        self,
        store: Store,
        wrapper: KeyWrapper,
        issuer: str,
        *,
        ttl_s: float = 3600.0,
        publish_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.ttl_s = ttl_s
        self.publish_s = publish_s
        self._store = store
        self._wrapper = wrapper
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[wl.PublicKey] = []
        self._private: dict[str, wl.SigningKey] = {}  # by kid: opened and parsed once
        self._read_at = -float("inf")

    # ------------------------------------------------------------------------------ publishing

    def discovery(self) -> dict[str, Any]:
        """`/.well-known/openid-configuration`."""
        return wl.discovery(self.issuer)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set: every key that signs, will sign, or signed a token not yet expired."""
        keys = self._current_keys()
        return wl.jwks(wl.published(keys, self._clock(), self.publish_s, self.ttl_s))

    def rotate(self) -> dict[str, Any]:
        """Make a new key: published at once, signing after `publish_s`; the old one stays published
        until its last token has expired. Returns the new key's kid and when it signs."""
        with self._lock:
            numbers = [k.number for k in self._load()]
            key = self._create((max(numbers) if numbers else 0) + 1)
            self._read_at = -float("inf")
        signs_at = key.created_at + self.publish_s
        log.info("workload signing key %s made; it signs from %.0f", key.kid, signs_at)
        return {"kid": key.kid, "signsAt": signs_at}

    # --------------------------------------------------------------------------------- signing

    def sign(self, workload: wl.Workload) -> str:
        """A token for `workload`, valid `ttl_s` from now, signed by the key the schedule names."""
        now = self._clock()
        current = wl.signer(self._current_keys(), now, self.publish_s)
        key = self._signing_key(current)
        return wl.sign(key, wl.claims(workload, self.issuer, now, self.ttl_s))

    def token(self, kind: wl.Kind, name: str, revision: int, cluster: str) -> str:
        """`WorkloadTokens.token`: the workload's project from its revision, the audience, provider
        and region from its Cluster.

        Raises:
            PermanentError: The revision or the cluster is not declared.
        """
        try:
            record = self._store.revision(name, revision)
        except NotFoundError as e:
            raise PermanentError(f"no identity for {kind} {name}: revision {revision} is unknown") from e
        found = next((d for d in self._store.documents("Cluster") if d.name == cluster), None)
        if found is None:
            raise PermanentError(f"no identity for {kind} {name}: cluster {cluster} is not declared")
        spec = Cluster.model_validate(found.spec).spec
        workload = wl.Workload(
            project=record.project or wl.UNSCOPED,
            kind=kind,
            name=name,
            cluster=cluster,
            provider=spec.provider,
            region=spec.region,
            audience=spec.identity.audience,
        )
        return self.sign(workload)

    # ---------------------------------------------------------------------------------- keeping

    def _current_keys(self) -> list[wl.PublicKey]:
        with self._lock:
            if not self._keys or time.monotonic() - self._read_at > REFRESH_S:
                keys = self._load()
                if not keys:
                    self._create(1)
                    keys = self._load()
                self._keys = keys
                self._read_at = time.monotonic()
            return list(self._keys)

    def _load(self) -> list[wl.PublicKey]:
        settings = self._store.control_settings_like(KEY_SETTING)
        return [wl.PublicKey.from_json(int(n.removeprefix(KEY_SETTING)), v) for n, v in settings.items()]

    def _create(self, number: int) -> wl.PublicKey:
        candidate = wl.new_key(number, self._clock())
        name = _sealed_name(number, candidate.public.kid)
        self._store.put_secret(seal_secret(candidate.private_pem, name, RESERVED_PROJECT, self._wrapper))
        stood = self._store.settle_control_setting(f"{KEY_SETTING}{number:04d}", candidate.public.to_json())
        return wl.PublicKey.from_json(number, stood)  # the first server to settle wins

    def _signing_key(self, key: wl.PublicKey) -> wl.SigningKey:
        with self._lock:
            if key.kid in self._private:
                return self._private[key.kid]
        wanted = _sealed_name(key.number, key.kid)
        sealed = next(
            (s for s in self._store.sealed_secrets() if s.project == RESERVED_PROJECT and s.name == wanted),
            None,
        )
        if sealed is None:
            raise PermanentError(f"workload signing key {key.kid} has no private key in the store")
        try:
            pem = open_secret(sealed, self._wrapper)
        except SecretUnreadable as e:
            raise PermanentError(f"workload signing key {key.kid} does not open with this master key") from e
        signing = wl.SigningKey(key, pem)
        with self._lock:
            self._private[key.kid] = signing
        return signing
