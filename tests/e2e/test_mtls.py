"""Mutual TLS inside the fleet, end to end (issue 18): replicas refuse plain HTTP, certificate-less,
self-signed, foreign and expired clients; answer control endpoints to servers and admins only; and the
gateway serves with 0 failed requests while the fleet CA is rotated and every certificate renewed."""

from __future__ import annotations

import json
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from tests.e2e.conftest import Polycloud
from tests.e2e.fleets import Fleet, ServiceDecl
from tests.e2e.traffic import ClientLoad

from polycloud.pki import authority as ca
from polycloud.pki import identities
from polycloud.pki.contexts import TlsFiles
from polycloud.secrets import LocalKeyWrapper
from polycloud.server.certs import FleetAuthority
from polycloud.state import Store

pytestmark = pytest.mark.e2e

PUBLISH_S = 3.0
"""A new CA signs this soon after a rotation (60 s by default), so the test sees every renewal."""
PROBE = "/v2/health/ready"


def _call(endpoint: str, files: TlsFiles | None, path: str = PROBE) -> int | str:
    """The status of GET endpoint+path with `files` as the client certificate, or why it failed."""
    context = ssl.create_default_context(cafile=None)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the replica's identity is not what these cases check
    if files is not None:
        context.load_cert_chain(files.cert, files.key)
    try:
        with httpx.Client(verify=context, timeout=5.0, trust_env=False) as client:
            return client.get(f"{endpoint}{path}").status_code
    except httpx.HTTPError as e:
        return type(e).__name__


def _write(folder: Path, issued: ca.Issued, bundle: str) -> TlsFiles:
    files = TlsFiles(folder)
    files.write(issued.certificate_pem, issued.key_pem, bundle)
    return files


def _issuers(polycloud: Polycloud) -> set[str]:
    """The CA key identifiers of every replica's and the gateway's certificate."""
    return {_issuer_of(cert.read_text()) for cert in (polycloud.home / "tls").rglob("cert.pem")}


def _issuer_of(pem: str) -> str:
    leaf = x509.load_pem_x509_certificate(pem.encode())
    return leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier.hex()


def test_replicas_accept_only_fleet_clients_and_rotation_drops_nothing(
    polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    polycloud.env["POLYCLOUD_CA_PUBLISH_S"] = str(PUBLISH_S)
    fleet = Fleet(tmp_path, model, ("acme", "borealis"), (ServiceDecl("alpha", ("acme", "borealis"), 1),))
    polycloud.ok("apply", fleet.write(), "--yes")
    status = polycloud.expect_exactly(fleet)
    endpoints = [r["endpoint"] for s in status["services"] for c in s["clusters"] for r in c["replicas"]]
    assert endpoints and all(e.startswith("https://127.0.0.1:") for e in endpoints)
    replica = endpoints[0]

    # Strangers are refused: plain HTTP, no certificate, self-signed, another CA, an expired fleet one.
    assert _call(replica.replace("https://", "http://"), None) != 200
    assert _call(replica, None) != 200
    stranger = ca.new_authority()
    self_signed = ca.issue_with_key(stranger, identities.gateway("x"), call=True)
    _write(tmp_path / "other-ca", self_signed, stranger.certificate_pem())
    assert _call(replica, TlsFiles(tmp_path / "other-ca")) != 200
    with Store.open(f"sqlite:///{polycloud.home / 'state.db'}", migrate=False) as store:
        authority = FleetAuthority(store, LocalKeyWrapper.load(None, polycloud.home)).current()
    past = datetime.now(UTC) - timedelta(days=2)
    expired = ca.issue_with_key(authority, identities.admin("old"), call=True, now=past)
    assert _call(replica, _write(tmp_path / "expired", expired, authority.certificate_pem())) != 200
    replica_as_client = ca.issue_with_key(authority, identities.replica(None, "alpha", "acme"), serve=True)
    assert _call(replica, _write(tmp_path / "replica", replica_as_client, authority.certificate_pem())) != 200

    # The gateway's certificate reaches inference, not the control endpoints; an admin's reaches both.
    gateway = TlsFiles(polycloud.home / "tls" / "gateway")
    assert _call(replica, gateway) == 200
    assert _call(replica, gateway, "/_polycloud/faults") == 403
    polycloud.ok("cert", "issue", "--out", tmp_path / "admin")
    admin = TlsFiles(tmp_path / "admin")
    assert {p.stat().st_mode & 0o777 for p in (admin.cert, admin.key, admin.ca)} == {0o600}
    assert _call(replica, admin, "/_polycloud/faults") == 200
    trail = json.loads(polycloud.ok("audit", "log", "--json").stdout)
    assert any(e["action"] == "cert.issue" and e["outcome"] == "ok" for e in trail)

    # Rotate the CA under load: every certificate moves to the new CA, and no request fails.
    url = status["gateway"]["url"]
    before = _issuers(polycloud)
    with ClientLoad([url], "alpha", clients=4) as load:
        load.wait_for(100)
        polycloud.ok("cert", "rotate")
        polycloud.eventually(
            lambda: (after := _issuers(polycloud)) and not (after & before) and len(after) >= 1,
            "every certificate to be renewed by the new CA",
            timeout_s=60,
        )
        started = time.monotonic()
        load.wait_for(100)
        load.stop()
    assert not load.failures(), load.describe_failures()
    assert load.snapshot()[-1].started > started
