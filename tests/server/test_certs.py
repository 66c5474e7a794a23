"""The fleet CA kept in the state store: created once however many servers race, hidden from the
secrets list, rotated with a publish delay, and granting gateways' signing requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from polycloud.gateway.certificates import GatewayCredentials
from polycloud.pki import authority as ca
from polycloud.pki import identities
from polycloud.secrets import LocalKeyWrapper
from polycloud.server.certs import FleetAuthority, ServerCredentials
from polycloud.state import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def authority(store: Store, home: Path, publish_s: float = 60.0) -> FleetAuthority:
    return FleetAuthority(store, LocalKeyWrapper.load(None, home), publish=timedelta(seconds=publish_s))


def test_racing_servers_make_one_ca_and_it_is_not_a_listed_secret(store: Store, tmp_path: Path) -> None:
    servers = [authority(store, tmp_path) for _ in range(4)]
    made: list[str] = []
    threads = [
        threading.Thread(target=lambda s=s: made.append(s.current().certificate_pem())) for s in servers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(made)) == 1
    assert store.secrets() == []


def test_a_rotated_ca_is_trusted_at_once_and_signs_after_the_publish_delay(
    store: Store, tmp_path: Path
) -> None:
    first = authority(store, tmp_path, publish_s=3600)
    old = first.current().certificate_pem()
    new = first.rotate()

    assert first.current().certificate_pem() == old  # not published long enough to sign
    assert new in first.trust_bundle() and old in first.trust_bundle()
    eager = authority(store, tmp_path, publish_s=0)
    assert eager.current().certificate_pem() == new
    leaf = ca.issue_with_key(first.current(), identities.gateway("g"), call=True).certificate_pem
    assert eager.due(leaf) and not first.due(leaf)


def test_a_gateway_gets_its_certificate_by_request_and_keeps_it_across_restarts(
    store: Store, tmp_path: Path
) -> None:
    leader = ServerCredentials(authority(store, tmp_path), "srv-1", tmp_path / "srv")
    leader.client_context()  # makes the CA
    identity = identities.gateway("gw-1")
    gateway = GatewayCredentials(store, identity, tmp_path / "gw")

    gateway.refresh()  # asks
    assert not gateway.ready
    assert leader.authority.grant_pending() == 1
    gateway.refresh()  # receives

    assert gateway.ready
    cert = x509.load_pem_x509_certificate(gateway.files.cert.read_bytes())
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uris.get_values_for_type(x509.UniformResourceIdentifier) == [identity]
    assert {p.stat().st_mode & 0o777 for p in gateway.files.folder.iterdir()} == {0o600}
    assert GatewayCredentials(store, identity, tmp_path / "gw").ready  # from its home, without the store


def test_only_gateways_get_certificates_by_request(store: Store, tmp_path: Path) -> None:
    leader = authority(store, tmp_path)
    key = ca.new_key()
    store.request_certificate(identities.server("srv-x"), ca.signing_request(key, identities.server("srv-x")))

    assert leader.grant_pending() == 0
    granted = store.granted_certificate(identities.server("srv-x"))
    assert granted is not None and granted[1] is None
