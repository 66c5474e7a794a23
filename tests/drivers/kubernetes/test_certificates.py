"""The fleet's mutual TLS on Kubernetes: replica certificates as Secrets the pods mount, issued by a real
`ServerCredentials` over a SQLite store, renewed when due or when the trust bundle changes."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from polycloud.drivers.kubernetes import KubernetesDriver
from polycloud.drivers.kubernetes.manifests import HEALTH_PORT
from polycloud.drivers.registry import create_driver
from polycloud.errors import PermanentError
from polycloud.pki import authority as ca
from polycloud.pki import identities
from polycloud.secrets import LocalKeyWrapper
from polycloud.server.certs import FleetAuthority, ServerCredentials
from polycloud.state import Store

from .conftest import MakeDriver, MemorySpecs
from .fake_api import FakeApiServer
from .test_driver import GROUP_V1, spec

TLS_SECRET = "polycloud-tls.fraud"
HOSTS = ["fraud", "fraud.ml", "fraud.ml.svc", "fraud.ml.svc.cluster.local"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def credentials(store: Store, home: Path, publish_s: float = 0.0) -> ServerCredentials:
    authority = FleetAuthority(store, LocalKeyWrapper.load(None, home), publish=timedelta(seconds=publish_s))
    return ServerCredentials(authority, "srv-1", home / "srv")


@pytest.fixture
def fleet(store: Store, tmp_path: Path) -> ServerCredentials:
    return credentials(store, tmp_path)


def rotate(fleet: ServerCredentials) -> str:
    """A new fleet CA, made a second after the first: CAs are ordered by their start, which has a
    resolution of one second."""
    time.sleep(1.1)
    return fleet.rotate_authority()


def tls_of(fake: FakeApiServer) -> dict[str, str]:
    found = fake.get("Secret", TLS_SECRET)
    assert found is not None
    return {k: base64.b64decode(v).decode() for k, v in found["data"].items()}


def secret_reads(fake: FakeApiServer) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path.endswith(f"/{TLS_SECRET}"))


def tls_applies(fake: FakeApiServer) -> int:
    return sum(1 for r in fake.requests if r.method == "PATCH" and r.body["metadata"]["name"] == TLS_SECRET)


def test_replicas_get_a_certificate_secret_they_mount_and_an_https_endpoint(
    fake: FakeApiServer, make_driver: MakeDriver, fleet: ServerCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    driver = make_driver(tls=fleet, renew_interval_s=0.0)
    started = driver.start_replica(spec(0))

    assert started.endpoint == "https://fraud.ml.svc.cluster.local"
    applies = [(r.body["kind"], r.body["metadata"]["name"]) for r in fake.requests if r.method == "PATCH"]
    assert applies == [
        ("Secret", "polycloud-fraud-token"),
        ("Secret", TLS_SECRET),  # before the Deployment that mounts it
        ("Service", "fraud"),
        ("Deployment", GROUP_V1),
    ]
    secret = fake.get("Secret", TLS_SECRET) or {}
    assert secret["type"] == "kubernetes.io/tls"
    values = tls_of(fake)
    assert set(values) == {"tls.crt", "tls.key", "ca.crt"}
    certificate = x509.load_pem_x509_certificate(values["tls.crt"].encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        identities.replica(None, "fraud", "eks-use1")
    ]
    assert names.get_values_for_type(x509.DNSName) == HOSTS
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]  # serves; cannot call other replicas
    key = serialization.load_pem_private_key(values["tls.key"].encode(), password=None)
    assert key.public_key() == certificate.public_key()
    assert values["ca.crt"] == fleet.trust_bundle()
    assert ca.issued_by(values["tls.crt"], fleet.authority.current().certificate_pem())

    dep = fake.get("Deployment", GROUP_V1) or {}
    pod = dep["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert {"name": "tls", "mountPath": "/etc/polycloud/tls", "readOnly": True} in server["volumeMounts"]
    assert pod["volumes"][0]["secret"]["secretName"] == TLS_SECRET
    assert server["args"][-4:] == ["--tls-dir", "/etc/polycloud/tls", "--health-port", str(HEALTH_PORT)]
    assert {server[p]["httpGet"]["port"] for p in ("readinessProbe", "livenessProbe", "startupProbe")} == {
        "health"
    }
    service = fake.get("Service", "fraud") or {}
    assert service["spec"]["ports"][0]["port"] == 443

    assert {s.endpoint for s in driver.list_replicas()} == {"https://fraud.ml.svc.cluster.local"}
    assert fake.names("Secret") == ["polycloud-fraud-token", TLS_SECRET]  # the collector keeps it
    assert "PRIVATE KEY" not in caplog.text and values["tls.key"] not in caplog.text


def test_one_certificate_serves_every_replica_until_something_changes(
    fake: FakeApiServer, make_driver: MakeDriver, fleet: ServerCredentials
) -> None:
    driver = make_driver(tls=fleet, renew_interval_s=0.0)
    driver.start_replica(spec(0))
    first = tls_of(fake)
    driver.start_replica(spec(1))
    for _ in range(3):
        driver.list_replicas()
    assert tls_applies(fake) == 1 and tls_of(fake) == first


def test_a_certificate_due_for_renewal_is_reissued_and_reapplied(
    fake: FakeApiServer, make_driver: MakeDriver, fleet: ServerCredentials
) -> None:
    driver = make_driver(tls=fleet, renew_interval_s=0.0)
    driver.start_replica(spec(0))
    old = tls_of(fake)
    new_ca = rotate(fleet)  # published at once (publish 0): it signs, the old leaf is due
    assert fleet.due(old["tls.crt"])

    driver.list_replicas()

    renewed = tls_of(fake)
    assert tls_applies(fake) == 2
    assert renewed["tls.crt"] != old["tls.crt"] and renewed["tls.key"] != old["tls.key"]
    assert ca.issued_by(renewed["tls.crt"], new_ca) and not fleet.due(renewed["tls.crt"])
    assert new_ca in renewed["ca.crt"] and old["ca.crt"] in renewed["ca.crt"]  # the old CA still trusted
    driver.list_replicas()
    assert tls_applies(fake) == 2


def test_a_new_ca_reaches_the_bundle_before_it_signs(
    fake: FakeApiServer, make_driver: MakeDriver, store: Store, tmp_path: Path
) -> None:
    fleet = credentials(store, tmp_path, publish_s=3600)
    driver = make_driver(tls=fleet, renew_interval_s=0.0)
    driver.start_replica(spec(0))
    old = tls_of(fake)
    new_ca = rotate(fleet)  # trusted now, signing in an hour

    driver.list_replicas()

    updated = tls_of(fake)
    assert (updated["tls.crt"], updated["tls.key"]) == (old["tls.crt"], old["tls.key"])  # not due
    assert new_ca in updated["ca.crt"] and updated["ca.crt"] == fleet.trust_bundle()


def test_a_secret_deleted_behind_our_back_is_issued_again(
    fake: FakeApiServer, make_driver: MakeDriver, fleet: ServerCredentials
) -> None:
    driver = make_driver(tls=fleet, renew_interval_s=0.0)
    driver.start_replica(spec(0))
    with fake.lock:
        fake.objects.pop(("Secret", "ml", TLS_SECRET))
    driver.list_replicas()
    assert ca.issued_by(tls_of(fake)["tls.crt"], fleet.authority.current().certificate_pem())


def test_renewal_waits_its_interval_unless_the_trust_bundle_changes(
    fake: FakeApiServer, make_driver: MakeDriver, fleet: ServerCredentials
) -> None:
    driver = make_driver(tls=fleet, renew_interval_s=3600.0)
    driver.start_replica(spec(0))
    driver.list_replicas()  # the first pass: nothing to do, the next one is an hour away
    reads = secret_reads(fake)
    driver.list_replicas()
    assert secret_reads(fake) == reads

    fleet.rotate_authority()  # a new CA must reach the pods before it signs: no waiting for the hour
    driver.list_replicas()
    assert tls_applies(fake) == 2 and tls_of(fake)["ca.crt"] == fleet.trust_bundle()


def test_an_error_postpones_renewal_and_never_breaks_the_listing(
    fake: FakeApiServer,
    make_driver: MakeDriver,
    fleet: ServerCredentials,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = make_driver(tls=fleet, renew_interval_s=3600.0)
    driver.start_replica(spec(0))

    def no_ca() -> str:
        raise PermanentError("no fleet CA key opens with this master key")

    monkeypatch.setattr(fleet, "trust_bundle", no_ca)
    for _ in range(3):
        assert [s.id for s in driver.list_replicas()] == ["fraud-eks-use1-0"]
    assert caplog.text.count("certificate renewal postponed: no fleet CA key opens") == 1  # per hour


def test_the_secret_goes_with_the_service(
    fake: FakeApiServer, make_driver: MakeDriver, fleet: ServerCredentials
) -> None:
    driver = make_driver(tls=fleet, renew_interval_s=0.0)
    driver.start_replica(spec(0))
    driver.stop_replica("fraud-eks-use1-0")
    driver.list_replicas()
    assert fake.names("Secret") == [] and fake.names("Service") == []
    assert tls_applies(fake) == 1  # not renewed back to life once nothing mounts it


def test_the_registry_passes_the_fleet_tls_on(
    specs: MemorySpecs, tmp_path: Path, fake: FakeApiServer, fleet: ServerCredentials
) -> None:
    driver = create_driver("kubernetes", "eks-use1", tmp_path, specs, tls=fleet)
    try:
        assert isinstance(driver, KubernetesDriver)
        assert driver.start_replica(spec(0)).endpoint == "https://fraud.ml.svc.cluster.local"
        assert fake.get("Secret", TLS_SECRET) is not None
    finally:
        driver.close()
