"""The fleet CA: what it signs, who a certificate lets in (checked by a real TLS handshake), renewal,
and rotation with overlap."""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polycloud.pki import authority as ca
from polycloud.pki import identities
from polycloud.pki.contexts import TlsFiles, Watched, client_context, peer_identity, server_context


def files(folder: Path, issued: ca.Issued, *authorities: ca.Authority) -> TlsFiles:
    held = TlsFiles(folder)
    held.write(issued.certificate_pem, issued.key_pem, ca.bundle(a.certificate_pem() for a in authorities))
    return held


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str | None:
    """Connect `client` to a server using `server` over loopback; the server's view of the peer, or
    raises the client's SSL error."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, str | None] = {}

    def accept() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = peer_identity(tls)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            seen["peer"] = None

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        with client.wrap_socket(
            socket.create_connection(listener.getsockname()), server_hostname="127.0.0.1"
        ) as s:
            assert s.recv(2) == b"ok"
    finally:
        thread.join(10)
        listener.close()
    return seen.get("peer")


@pytest.fixture
def fleet_ca() -> ca.Authority:
    return ca.new_authority()


def test_a_gateway_certificate_reaches_a_replica_and_names_the_gateway(
    fleet_ca: ca.Authority, tmp_path: Path
) -> None:
    replica = files(
        tmp_path / "r",
        ca.issue_with_key(fleet_ca, identities.replica("p", "m", "c"), hosts=["127.0.0.1"], serve=True),
        fleet_ca,
    )
    gateway = files(
        tmp_path / "g", ca.issue_with_key(fleet_ca, identities.gateway("gw-1"), call=True), fleet_ca
    )

    assert handshake(server_context(replica), client_context(gateway)) == "spiffe://polycloud/gateway/gw-1"


@pytest.mark.parametrize("case", ["replica-as-client", "other-ca", "expired"])
def test_strangers_are_refused_in_the_handshake(fleet_ca: ca.Authority, tmp_path: Path, case: str) -> None:
    replica = files(
        tmp_path / "r",
        ca.issue_with_key(fleet_ca, identities.replica(None, "m", "c"), hosts=["127.0.0.1"], serve=True),
        fleet_ca,
    )
    other = ca.new_authority()
    caller = {
        "replica-as-client": (
            ca.issue_with_key(fleet_ca, identities.replica(None, "n", "c"), serve=True),
            fleet_ca,
        ),
        "other-ca": (ca.issue_with_key(other, identities.gateway("g"), call=True), other),
        "expired": (
            ca.issue_with_key(
                fleet_ca, identities.gateway("g"), call=True, now=datetime.now(UTC) - timedelta(days=3)
            ),
            fleet_ca,
        ),
    }[case]
    client = client_context(files(tmp_path / "c", caller[0], fleet_ca))

    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(server_context(replica), client)


def test_a_renewed_certificate_is_loaded_into_the_same_server_context(
    fleet_ca: ca.Authority, tmp_path: Path
) -> None:
    replica = files(
        tmp_path / "r",
        ca.issue_with_key(fleet_ca, identities.replica(None, "m", "c"), hosts=["127.0.0.1"], serve=True),
        fleet_ca,
    )
    watched = Watched(replica)
    newer = ca.new_authority()
    gateway = files(
        tmp_path / "g", ca.issue_with_key(newer, identities.gateway("g"), call=True), fleet_ca, newer
    )

    assert not watched.refresh()
    replica.write_bundle(ca.bundle([fleet_ca.certificate_pem(), newer.certificate_pem()]))
    assert watched.refresh()
    assert handshake(watched.context, client_context(gateway)) == identities.gateway("g")


def test_a_new_ca_signs_only_once_published_and_leaves_of_the_old_one_fall_due(
    fleet_ca: ca.Authority,
) -> None:
    now = datetime.now(UTC)
    later = ca.new_authority(now + timedelta(minutes=10))
    pems = [fleet_ca.certificate_pem(), later.certificate_pem()]
    leaf = ca.issue_with_key(fleet_ca, identities.gateway("g"), call=True).certificate_pem

    assert ca.signer(pems, now + timedelta(minutes=10), timedelta(seconds=60)) == fleet_ca.certificate_pem()
    assert ca.signer(pems, now + timedelta(minutes=12), timedelta(seconds=60)) == later.certificate_pem()
    assert not ca.due(leaf, fleet_ca.certificate_pem())
    assert ca.due(leaf, later.certificate_pem())
    assert ca.due(leaf, fleet_ca.certificate_pem(), now + timedelta(hours=13))  # past half its day


def test_the_bundle_drops_expired_authorities_and_leaves_never_outlive_their_ca() -> None:
    old = ca.new_authority(datetime.now(UTC) - timedelta(days=400))
    young = ca.new_authority(lifetime=timedelta(hours=2))
    assert ca.bundle([old.certificate_pem(), young.certificate_pem()]) == young.certificate_pem()
    leaf = ca.issue_with_key(young, identities.gateway("g"), call=True)
    assert leaf.not_after <= young.not_after


def test_a_signing_request_proves_the_key_and_a_forged_one_is_refused() -> None:
    key = ca.new_key()
    request = ca.signing_request(key, identities.gateway("g"))
    assert ca.requested_key(request).public_numbers() == key.public_key().public_numbers()
    with pytest.raises(ca.CertificateError):
        ca.requested_key(request.replace("A", "B", 3))


@pytest.mark.parametrize(
    ("uri", "role"),
    [
        (identities.server("srv-1"), "server"),
        (identities.gateway("gw/1"), "gateway"),
        (identities.admin("ops"), "admin"),
        (identities.replica("risk", "fraud", "aws-use1"), "replica"),
        ("spiffe://other/server/x", None),
        ("spiffe://polycloud/server/", None),
        (None, None),
    ],
)
def test_roles_come_from_the_spiffe_identity(uri: str | None, role: str | None) -> None:
    assert identities.role_of(uri) == role
