"""Optional TLS: with POLYCLOUD_TLS_CERT and POLYCLOUD_TLS_KEY the API and the gateway serve HTTPS only,
and the CLI trusts that certificate. The certificate is self-signed, made here with `cryptography`."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.e2e.conftest import Polycloud

pytestmark = pytest.mark.e2e


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "polycloud test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.write_bytes(key_bytes)
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def tls_home(tmp_path: Path) -> Iterator[tuple[Polycloud, Path]]:
    polycloud = Polycloud(tmp_path)
    cert, key = self_signed(tmp_path)
    polycloud.env |= {"POLYCLOUD_TLS_CERT": str(cert), "POLYCLOUD_TLS_KEY": str(key)}
    try:
        yield polycloud, cert
    finally:
        errors = polycloud.close()
    assert errors == []


def test_the_api_and_the_gateway_serve_https_and_the_cli_trusts_them(
    tls_home: tuple[Polycloud, Path],
) -> None:
    polycloud, cert = tls_home
    polycloud.ok("up", "--detach")
    status = json.loads(polycloud.ok("status", "--json").stdout)
    api, gateway = status["api"]["url"], status["gateway"]["url"]
    assert api.startswith("https://") and gateway.startswith("https://")
    trusted = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(verify=trusted, timeout=10, trust_env=False) as http:
        assert http.get(f"{api}/api/v1/health").status_code == 200
        polycloud.eventually(
            lambda: http.get(f"{gateway}/v2/health/live").status_code == 200, "the gateway to serve HTTPS"
        )
    with httpx.Client(timeout=5, trust_env=False) as plain:
        with pytest.raises(httpx.HTTPError):
            plain.get(api.replace("https://", "http://") + "/api/v1/health")
        with pytest.raises(httpx.ConnectError):  # an unknown certificate is refused by default
            plain.get(f"{gateway}/v2/health/live")


def test_a_certificate_without_its_key_is_a_clear_error(tmp_path: Path) -> None:
    polycloud = Polycloud(tmp_path)
    cert, _ = self_signed(tmp_path)
    polycloud.env |= {"POLYCLOUD_TLS_CERT": str(cert)}
    rc, out, err = polycloud.cli("up")
    assert rc == 1
    assert "set both POLYCLOUD_TLS_CERT and POLYCLOUD_TLS_KEY, or neither" in err
    assert "Traceback" not in out + err
    assert polycloud.close() == []
