"""The fleet CA in the state store, and the certificates a server issues and holds.

The CA's certificates are shared settings (`fleet-ca/0001`, `fleet-ca/0002`, ...: public, readable by
gateways for their trust bundle); each CA's private key is sealed with the master key like a secret, in
the reserved project `_polycloud` (no user project can start with `_`), so rotating the master key
re-wraps it too. Every server can load the CA; the leader issues: replica certificates when the local
driver starts or renews a replica, gateway certificates for their signing requests (`grant_pending`,
every second), and a new CA when the current one nears its end (`rotate`, also `polycloud cert rotate`).

Creating a CA is race-free among servers: each seals its candidate key under a name carrying the
certificate's fingerprint, then settles the setting; the one that stands names its own key.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from polycloud.errors import PermanentError
from polycloud.pki import authority as ca
from polycloud.pki import identities
from polycloud.pki.contexts import TlsFiles, client_context, load
from polycloud.secrets.crypto import KeyWrapper, SecretUnreadable, open_secret, seal_secret
from polycloud.state.repositories import AuthorityRepository

log = logging.getLogger(__name__)

RESERVED_PROJECT = "_polycloud"
REFRESH_S = 10.0
"""How long a server trusts its cached view of the CAs (a rotation by another server shows up then)."""


def _fingerprint(certificate_pem: str) -> str:
    der = x509.load_pem_x509_certificate(certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()[:16]


def _key_name(number: str, certificate_pem: str) -> str:
    return f"fleet-ca-{number}-{_fingerprint(certificate_pem)}"


class FleetAuthority:
    """The fleet CA as every server sees it. Thread-safe."""

    def __init__(
        self, store: AuthorityRepository, wrapper: KeyWrapper, *, publish: timedelta = ca.CA_PUBLISH
    ) -> None:
        """The CA kept in `store`, its keys sealed by `wrapper`; a new CA signs once it has been
        trusted everywhere for `publish`."""
        self._store = store
        self._wrapper = wrapper
        self._publish = publish
        self._signer_pem: str | None = None
        self._lock = threading.Lock()
        self._current: ca.Authority | None = None
        self._bundle = ""
        self._read_at = -float("inf")

    def current(self) -> ca.Authority:
        """The CA that signs now (`polycloud.pki.authority.signer`); the first is created when there is
        none.

        Raises:
            PermanentError: No CA key opens with this master key (and a new one could not be made).
        """
        with self._lock:
            if self._current is None or time.monotonic() - self._read_at > REFRESH_S:
                self._load()
            assert self._current is not None
            return self._current

    def trust_bundle(self) -> str:
        """Every unexpired CA certificate, newest first (what every holder trusts)."""
        self.current()
        return self._bundle

    def due(self, certificate_pem: str) -> bool:
        """Whether a leaf must be renewed: past half its life, or not signed by the CA that signs now."""
        self.current()
        return ca.due(certificate_pem, self._signer_pem)

    def rotate(self) -> str:
        """Make a new CA: trusted at once, signing after the publish delay, when every leaf is renewed
        with it; the old CA stays trusted until it expires. Returns the new CA's certificate."""
        with self._lock:
            numbers = sorted(self._store.control_settings_like(ca.CA_SETTING))
            after = int(numbers[-1].removeprefix(ca.CA_SETTING)) if numbers else 0
            pem = self._create(f"{after + 1:04d}")
            self._load()
            log.info("fleet CA rotated: CA %04d signs in %s", after + 1, self._publish)
            return pem

    def _load(self) -> None:
        certificates = self._store.control_settings_like(ca.CA_SETTING)
        if not certificates:
            self._create("0001")
            certificates = self._store.control_settings_like(ca.CA_SETTING)
        sealed = {s.name: s for s in self._store.sealed_secrets() if s.project == RESERVED_PROJECT}
        signing = ca.signer([certificates[n] for n in sorted(certificates)], publish=self._publish)
        current = None
        for name in sorted(certificates, reverse=True):
            pem = certificates[name]
            if pem != signing:
                continue
            key = sealed.get(_key_name(name.removeprefix(ca.CA_SETTING), pem))
            if key is None:
                continue
            try:
                current = ca.load_authority(pem, open_secret(key, self._wrapper))
            except (SecretUnreadable, PermanentError) as e:
                log.warning("fleet CA %s does not open here: %s", name, e)
                continue
            break
        if current is None:
            raise PermanentError("no fleet CA key opens with this master key; run `polycloud cert rotate`")
        newest = certificates[max(certificates)]
        if newest == signing and current.not_after - datetime.now(UTC) < ca.CA_ROTATE_BEFORE:
            number = int(sorted(certificates)[-1].removeprefix(ca.CA_SETTING)) + 1
            self._create(f"{number:04d}")
            return self._load()
        self._current = current
        self._signer_pem = signing
        self._bundle = ca.bundle(certificates.values())
        self._read_at = time.monotonic()

    def _create(self, number: str) -> str:
        candidate = ca.new_authority()
        pem = candidate.certificate_pem()
        sealed = seal_secret(candidate.key_pem(), _key_name(number, pem), RESERVED_PROJECT, self._wrapper)
        self._store.put_secret(sealed)
        return self._store.settle_control_setting(f"{ca.CA_SETTING}{number}", pem)  # the first to settle wins

    def grant_pending(self) -> int:
        """Sign every waiting gateway request (the identity must be a gateway's); returns how many."""
        pending = self._store.pending_certificates()
        if not pending:
            return 0
        authority = self.current()
        granted = 0
        for holder, request in pending:
            if identities.role_of(holder) != "gateway":
                log.warning("certificate request for %s refused: only gateways ask this way", holder)
                continue
            try:
                key = ca.requested_key(request)
            except PermanentError as e:
                log.warning("certificate request for %s refused: %s", holder, e)
                continue
            issued = ca.issue(authority, holder, key, call=True)
            self._store.grant_certificate(holder, request, issued.certificate_pem)
            granted += 1
        return granted


class ServerCredentials:
    """A server's own certificate (to call replicas) and the replicas' it issues: a `FleetTls`."""

    def __init__(self, authority: FleetAuthority, member_id: str, folder: Path) -> None:
        self.authority = authority
        self.files = TlsFiles(folder)
        self._identity = identities.server(member_id)
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._trusted = ""

    def replica_files(self, identity: str, hosts: Sequence[str], folder: Path) -> TlsFiles:
        """Issue a replica a new key and certificate into `folder`, with the trust bundle."""
        issued = ca.issue_with_key(self.authority.current(), identity, hosts=list(hosts), serve=True)
        files = TlsFiles(folder)
        files.write(issued.certificate_pem, issued.key_pem, self.authority.trust_bundle())
        return files

    def client_context(self) -> ssl.SSLContext:
        """This server's client context: always the same object (clients may keep it), its certificate
        renewed and its trust bundle refreshed in place (connections opened from then on use them)."""
        with self._lock:
            bundle = self.authority.trust_bundle()
            if self._context is None or self._due():
                issued = ca.issue_with_key(self.authority.current(), self._identity, call=True)
                self.files.write(issued.certificate_pem, issued.key_pem, bundle)
            elif self._trusted != bundle:
                self.files.write_bundle(bundle)
            else:
                return self._context
            if self._context is None:
                self._context = client_context(self.files)
            else:
                load(self._context, self.files)
            self._trusted = bundle
            return self._context

    def trust_bundle(self) -> str:
        """The CA certificates every holder must trust now."""
        return self.authority.trust_bundle()

    def due(self, certificate_pem: str) -> bool:
        """Whether a holder's certificate must be replaced."""
        return self.authority.due(certificate_pem)

    def keep_current(self) -> None:
        """The leader's certificate pass, every second: grant gateways' requests, renew its own."""
        self.authority.grant_pending()
        self.client_context()

    def rotate_authority(self) -> str:
        """Make a new fleet CA (`FleetAuthority.rotate`); returns its certificate."""
        return self.authority.rotate()

    def admin_certificate(self, name: str) -> ca.Issued:
        """A short-lived client certificate for an admin's debugging (`polycloud cert issue`)."""
        identity = identities.admin(name)
        return ca.issue_with_key(self.authority.current(), identity, call=True, lifetime=ca.ADMIN_LIFETIME)

    def _due(self) -> bool:
        try:
            return self.authority.due(self.files.cert.read_text())
        except OSError:
            return True
