"""Certificate files on disk and the `ssl` contexts built from them.

A holder keeps three files in its own folder, each written atomically and 0600: `cert.pem`, `key.pem`
and `ca.pem` (the trust bundle). Renewal replaces them; `Watched` notices (by modification time and
size) and loads the new ones into the same server context, so connections accepted from then on present
the new certificate and trust the new bundle, while open connections carry on undisturbed.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from polycloud.pki.authority import CertificateError


@dataclass(frozen=True)
class TlsFiles:
    """Where one holder's certificate, key and trust bundle live."""

    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / "cert.pem"

    @property
    def key(self) -> Path:
        return self.folder / "key.pem"

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    def exist(self) -> bool:
        """Whether all three files are there."""
        return self.cert.is_file() and self.key.is_file() and self.ca.is_file()

    def write(self, certificate_pem: str, key_pem: str | None, bundle_pem: str) -> None:
        """Replace the files (the key only when given: a renewal by request keeps its key)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if key_pem is not None:
            _write_private(self.key, key_pem)
        _write_private(self.ca, bundle_pem)
        _write_private(self.cert, certificate_pem)  # last: watchers reload once the rest is in place

    def write_bundle(self, bundle_pem: str) -> None:
        """Replace the trust bundle alone (a new CA to trust before it signs anything)."""
        _write_private(self.ca, bundle_pem)

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """What changes when any of the files is replaced."""
        stamps = []
        for path in (self.cert, self.key, self.ca):
            try:
                info = path.stat()
            except OSError:
                stamps.append((0, 0))
            else:
                stamps.append((info.st_mtime_ns, info.st_size))
        return tuple(stamps)


def _write_private(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:  # mkstemp creates it 0600
            out.write(text)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context that demands a client certificate from the fleet CA.

    Raises:
        CertificateError: The files are missing or do not load.
    """
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.verify_mode = ssl.CERT_REQUIRED
    load(context, files)
    return context


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context that presents the holder's certificate and verifies servers by the bundle and
    their host name.

    Raises:
        CertificateError: The files are missing or do not load.
    """
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    load(context, files)
    return context


def load(context: ssl.SSLContext, files: TlsFiles) -> None:
    """Load (or load again) the holder's certificate, key and bundle into `context`.

    Raises:
        CertificateError: The files are missing or do not load.
    """
    try:
        context.load_cert_chain(files.cert, files.key)
        context.load_verify_locations(cafile=files.ca)
    except (OSError, ssl.SSLError) as e:
        raise CertificateError(f"the certificate in {files.folder} does not load: {e}") from e


class Watched:
    """A server context that follows its files: `refresh` loads them again when they changed."""

    def __init__(self, files: TlsFiles) -> None:
        """Build the context from `files` (CertificateError when they do not load)."""
        self.files = files
        self.context = server_context(files)
        self._stamp = files.stamp()

    def refresh(self) -> bool:
        """Load renewed files into the context; returns whether they had changed.

        A half-written renewal that does not load is left for the next call (the old certificate
        stays in use meanwhile).
        """
        stamp = self.files.stamp()
        if stamp == self._stamp:
            return False
        try:
            load(self.context, self.files)
        except CertificateError:
            return False
        self._stamp = stamp
        return True


def peer_identity(ssl_object: Any) -> str | None:
    """The SPIFFE URI in the verified peer certificate of a TLS connection; None without one."""
    if ssl_object is None:
        return None
    certificate = ssl_object.getpeercert()
    if not certificate:
        return None
    for kind, value in certificate.get("subjectAltName", ()):
        if kind == "URI" and isinstance(value, str) and value.startswith("spiffe://"):
            return value
    return None


class FleetTls(Protocol):
    """What drivers and probes need of the fleet's mutual TLS (`polycloud.server.certs` provides it)."""

    def replica_files(self, identity: str, hosts: Sequence[str], folder: Path) -> TlsFiles:
        """Issue a replica a fresh key and certificate into `folder` (with the trust bundle)."""
        ...

    def client_context(self) -> ssl.SSLContext:
        """The context a server calls replicas with (its own certificate, renewed when due)."""
        ...

    def trust_bundle(self) -> str:
        """The CA certificates every holder must trust now."""
        ...

    def due(self, certificate_pem: str) -> bool:
        """Whether a holder's certificate must be replaced (old, or not from the CA that signs now)."""
        ...
