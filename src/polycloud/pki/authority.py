"""The fleet CA and the certificates it issues (ECDSA P-256: small keys, fast handshakes).

A leaf certificate carries its SPIFFE identity as a URI SAN, the host names and addresses it serves on
as DNS/IP SANs (so clients verify hosts as usual), and an extended key usage that says whether it may
serve (`serverAuth`, replicas), call (`clientAuth`, gateways and admins) or both (servers). OpenSSL checks
that usage during the handshake, so a replica's certificate cannot be used to call another replica.

Leaves live a day and are renewed past half their life; the CA lives a year and is replaced with
overlap: the trust bundle keeps every CA that has not expired, so leaves of the previous CA verify
until they are renewed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from polycloud.errors import PermanentError

CA_SETTING = "fleet-ca/"
"""Prefix of the shared settings holding the fleet CA certificates (`fleet-ca/0001`, ...), oldest first."""
CA_LIFETIME = timedelta(days=365)
CA_ROTATE_BEFORE = timedelta(days=60)
"""A CA this close to its end is replaced (its successor signs every renewal from then on)."""
LEAF_LIFETIME = timedelta(hours=24)
ADMIN_LIFETIME = timedelta(hours=1)
"""An admin's debugging certificate (`polycloud cert issue`) lives an hour."""
CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start this long before they are issued, so a peer whose clock is behind accepts them."""


class CertificateError(PermanentError):
    """A certificate, key or request that cannot be read or is not acceptable."""


@dataclass(frozen=True)
class Authority:
    """A CA certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def not_after(self) -> datetime:
        """When it expires."""
        return self.certificate.not_valid_after_utc

    def certificate_pem(self) -> str:
        """Its certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self) -> str:
        """Its private key in PEM (unencrypted: the caller seals it)."""
        return key_pem(self.key)


@dataclass(frozen=True)
class Issued:
    """A leaf certificate and, when this side made it, its private key."""

    certificate_pem: str
    key_pem: str | None
    not_after: datetime


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """A private key in unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def new_authority(now: datetime | None = None, lifetime: timedelta = CA_LIFETIME) -> Authority:
    """A new self-signed fleet CA."""
    start = (now or datetime.now(UTC)) - CLOCK_SKEW
    key = new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "polycloud"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"polycloud fleet CA {start:%Y-%m-%d %H:%M:%S}"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def load_authority(certificate_pem: str, private_key_pem: str) -> Authority:
    """An authority from its PEM certificate and key.

    Raises:
        CertificateError: Either does not parse, or the key is not the certificate's.
    """
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except ValueError as e:
        raise CertificateError(f"the fleet CA does not load: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
        raise CertificateError("the fleet CA's key is not its certificate's")
    return Authority(certificate, key)


def _alternative_names(identity: str, hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity)]
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(
    authority: Authority,
    identity: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    hosts: Sequence[str] = (),
    serve: bool = False,
    call: bool = False,
    now: datetime | None = None,
    lifetime: timedelta = LEAF_LIFETIME,
) -> Issued:
    """Sign a leaf certificate for `identity`'s `public_key`, never outliving the CA.

    Args:
        authority: The CA that signs.
        identity: The SPIFFE URI (`polycloud.pki.identities`).
        public_key: The holder's key (the private half never needs to reach the CA).
        hosts: Names and addresses it serves on (DNS or IP SANs).
        serve: May act as a TLS server (`serverAuth`).
        call: May act as a TLS client (`clientAuth`).
        now: The issuing time (tests pass the past to make expired certificates).
        lifetime: How long it lives.
    """
    start = (now or datetime.now(UTC)) - CLOCK_SKEW
    end = min(start + CLOCK_SKEW + lifetime, authority.not_after)
    usages = [
        u
        for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, serve), (ExtendedKeyUsageOID.CLIENT_AUTH, call))
        if on
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity[-64:])]))
        .issuer_name(authority.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(_alternative_names(identity, hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False
        )
        .sign(authority.key, hashes.SHA256())
    )
    return Issued(certificate.public_bytes(serialization.Encoding.PEM).decode(), None, end)


def issue_with_key(authority: Authority, identity: str, **options: object) -> Issued:
    """A new key and a certificate for it (for holders the control plane starts itself: replicas)."""
    key = new_key()
    issued = issue(authority, identity, key.public_key(), **options)  # type: ignore[arg-type]
    return Issued(issued.certificate_pem, key_pem(key), issued.not_after)


def signing_request(key: ec.EllipticCurvePrivateKey, identity: str) -> str:
    """A PEM certificate signing request for `identity` (a gateway asks for its certificate with it)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity[-64:])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def requested_key(csr_pem: str) -> ec.EllipticCurvePublicKey:
    """The public key of a signing request whose signature holds (proof that the asker has the key).

    Raises:
        CertificateError: It does not parse, its signature is wrong, or its key is not P-256.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as e:
        raise CertificateError(f"the certificate request does not parse: {e}") from e
    key = csr.public_key()
    if not csr.is_signature_valid or not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError("the certificate request is not signed by a P-256 key")
    return key


def not_after(certificate_pem: str) -> datetime:
    """When a PEM certificate expires.

    Raises:
        CertificateError: It does not parse.
    """
    try:
        return x509.load_pem_x509_certificate(certificate_pem.encode()).not_valid_after_utc
    except ValueError as e:
        raise CertificateError(f"the certificate does not parse: {e}") from e


def renewal_due(certificate_pem: str, now: datetime | None = None) -> bool:
    """Whether a certificate is past half its life (or unreadable): time to get the next one."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        return True
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    return (now or datetime.now(UTC)) >= start + (end - start) / 2


def bundle(certificates: Iterable[str], now: datetime | None = None) -> str:
    """The trust bundle: every CA certificate that has not expired, newest first, in one PEM text."""
    moment = now or datetime.now(UTC)
    live = [(not_after(pem), pem) for pem in certificates if not_after(pem) > moment]
    return "".join(pem for _, pem in sorted(live, reverse=True))


CA_PUBLISH = timedelta(seconds=180)
"""How long a new CA is trusted everywhere before it signs anything (holders reload trust bundles well
within this), so a rotation never presents a certificate that a peer cannot verify yet."""


def signer(
    certificates: Iterable[str], now: datetime | None = None, publish: timedelta = CA_PUBLISH
) -> str | None:
    """The PEM of the CA that signs now: the newest one published for at least `publish` (the oldest
    when none is yet: the fleet's first CA signs at once); None without CAs. `certificates` come oldest
    first (by their number), which breaks ties between CAs made within the same second."""
    moment = now or datetime.now(UTC)
    dated = sorted(
        (x509.load_pem_x509_certificate(pem.encode()).not_valid_before_utc + CLOCK_SKEW, order, pem)
        for order, pem in enumerate(certificates)
    )
    if not dated:
        return None
    published = [pem for start, _, pem in dated if start + publish <= moment]
    return published[-1] if published else dated[0][2]


def issued_by(certificate_pem: str, authority_pem: str) -> bool:
    """Whether the leaf was signed by that CA (by the CA's key identifier); False when unreadable."""
    try:
        leaf = x509.load_pem_x509_certificate(certificate_pem.encode())
        authority = x509.load_pem_x509_certificate(authority_pem.encode())
        leaf_id = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        own_id = authority.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (ValueError, x509.ExtensionNotFound):
        return False
    return leaf_id == own_id


def due(certificate_pem: str, signing_pem: str | None, now: datetime | None = None) -> bool:
    """Whether a leaf must be replaced: past half its life, or signed by a CA that no longer signs."""
    return renewal_due(certificate_pem, now) or (
        signing_pem is not None and not issued_by(certificate_pem, signing_pem)
    )
