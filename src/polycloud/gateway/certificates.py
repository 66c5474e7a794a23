"""The gateway's fleet certificate: how it calls replicas over mutual TLS.

The gateway makes its own key and asks the leader for a certificate with a signing request kept in the
store (the key never leaves the gateway); the leader grants it within a second. Certificate, key and
trust bundle are kept in the gateway's home (0600), so a gateway restarted while the control plane is
down still calls replicas with them (static stability: a certificate lives a day).

Every second `refresh` reads the fleet CAs: a new CA is added to the trust bundle at once (before it
signs anything), and when the certificate is past half its life or the signing CA changed, a new key
and request are made. All of it lands in one `ssl.SSLContext` that never changes identity, so the
connection pools keep it: connections opened after a renewal present the new certificate.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from polycloud.errors import PolycloudError
from polycloud.pki import authority as ca
from polycloud.pki.contexts import TlsFiles, load
from polycloud.state.repositories import CertificateRequester

log = logging.getLogger(__name__)


class GatewayCredentials:
    """The gateway's certificate, kept current from the store (`refresh` from a worker thread)."""

    def __init__(
        self,
        store: CertificateRequester,
        identity: str,
        folder: Path | None,
        *,
        publish: timedelta = ca.CA_PUBLISH,
    ) -> None:
        """Hold the certificate of `identity` in `folder` (a private temporary folder when None)."""
        self._store = store
        self.identity = identity
        self.files = TlsFiles(folder or Path(tempfile.mkdtemp(prefix="polycloud-gateway-tls-")))
        self._publish = publish
        self._pending: tuple[ec.EllipticCurvePrivateKey, str] | None = None
        self._last_error: str | None = None
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        """Presents the certificate once there is one; the same object for the gateway's life."""
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ready = False
        """Whether a certificate is loaded."""
        if self.files.exist():
            try:
                if ca.not_after(self.files.cert.read_text()) > datetime.now(UTC):
                    load(self.context, self.files)  # the saved one, still valid: serve with it at once
                    self.ready = True
            except (OSError, PolycloudError) as e:
                log.warning("the saved gateway certificate does not load: %s", e)

    def refresh(self) -> None:
        """Follow the fleet CAs and renew when due; store errors are logged once and retried."""
        try:
            self._refresh()
        except PolycloudError as e:
            if str(e) != self._last_error:
                log.warning("cannot refresh the gateway certificate: %s", e)
                self._last_error = str(e)
        else:
            self._last_error = None

    def _refresh(self) -> None:
        found = self._store.control_settings_like(ca.CA_SETTING)
        authorities = [found[name] for name in sorted(found)]  # oldest first
        if not authorities:
            return  # no server has made the fleet CA yet
        bundle = ca.bundle(authorities)
        signing = ca.signer(authorities, publish=self._publish)
        trusted = self.files.ca.read_text() if self.files.ca.is_file() else ""
        if trusted != bundle and self.files.exist():
            self.files.write_bundle(bundle)
            load(self.context, self.files)
        certificate = self.files.cert.read_text() if self.files.cert.is_file() else None
        if certificate is not None and self.ready and not ca.due(certificate, signing):
            return
        if self._pending is None:
            key = ca.new_key()
            self._pending = (key, ca.signing_request(key, self.identity))
        key, request = self._pending
        self._store.request_certificate(self.identity, request)
        granted = self._store.granted_certificate(self.identity)
        if granted is None or granted[0] != request or granted[1] is None:
            return
        self.files.write(granted[1], ca.key_pem(key), bundle)
        load(self.context, self.files)
        self._pending = None
        if not self.ready:
            log.info("gateway certificate granted for %s", self.identity)
        self.ready = True
