"""The workload issuer in the state store, verified as a cloud verifies it: PyJWT's JWKS client fetching
the discovery document and the JWK Set over HTTP from a real API server (uvicorn in a thread), across a
signing-key rotation (the server's clock is the test's, so a token's whole life passes at once)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from tests.gateway.support import ServerThread

from polycloud.api.app import create_app
from polycloud.catalog import load_catalog
from polycloud.errors import PermanentError
from polycloud.pki import workload as wl
from polycloud.secrets import LocalKeyWrapper
from polycloud.server.workload import WorkloadIssuer
from polycloud.services.applying import FleetService
from polycloud.services.context import ApiContext
from polycloud.services.documents import fleet_to_documents
from polycloud.services.inspecting import Endpoints
from polycloud.spec import load_fleet
from polycloud.state import Store

MODEL = Path(__file__).resolve().parents[2] / "examples" / "fleet" / "models" / "iris.onnx"
FLEET = """
apiVersion: polycloud/v1
kind: Cluster
metadata: {name: west}
spec:
  provider: acme
  region: lisbon
  location: {lat: 38.7, lon: -9.1}
  instances: [{name: cpu4, vcpus: 4, memoryGiB: 16, hourlyUSD: 0.12}]
  identity: {audience: "api://AzureADTokenExchange"}
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: scorer, labels: {project: risk}}
spec:
  model: {path: iris.onnx}
  resources: {vcpus: 1, memoryGiB: 1}
"""
TTL_S, PUBLISH_S = 3600.0, 600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    shutil.copy(MODEL, tmp_path / "iris.onnx")
    (tmp_path / "fleet.yaml").write_text(FLEET)
    documents = fleet_to_documents(load_fleet([tmp_path / "fleet.yaml"], load_catalog()))
    FleetService(opened, load_catalog()).apply(documents, author="test", message="", dry_run=False)
    yield opened
    opened.close()


def issuer(store: Store, home: Path, url: str, clock: Clock) -> WorkloadIssuer:
    wrapper = LocalKeyWrapper.load(None, home)
    return WorkloadIssuer(store, wrapper, url, ttl_s=TTL_S, publish_s=PUBLISH_S, clock=clock)


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[tuple[WorkloadIssuer, Clock, str]]:
    """An API server whose workload issuer is at its own URL, on the test's clock."""
    context = ApiContext(
        store=store,
        fleet=FleetService(store, load_catalog()),
        endpoints=Endpoints("http://api", "http://gw"),
        wake=lambda: None,
        shutdown=lambda: None,
    )
    app = create_app(context)
    server = ServerThread(app)
    clock = Clock()
    app.state.workload = issuer(store, tmp_path, server.url, clock)
    server.start()
    yield app.state.workload, clock, server.url
    server.stop()


def verify(token: str, url: str) -> dict[str, Any]:
    """A cloud's verification: discovery, then the key by `kid` from its `jwks_uri`, all over HTTP."""
    discovery = httpx.get(f"{url}/.well-known/openid-configuration").raise_for_status().json()
    keys = jwt.PyJWKClient(discovery["jwks_uri"], cache_jwk_set=False, cache_keys=False)
    key = keys.get_signing_key_from_jwt(token)
    body: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience="api://AzureADTokenExchange",
        issuer=discovery["issuer"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},  # on the test's clock
    )
    return body


def kids(url: str) -> list[str]:
    return [k["kid"] for k in httpx.get(f"{url}/.well-known/jwks.json").json()["keys"]]


def test_tokens_verify_across_a_rotation_and_the_old_key_leaves_after_its_tokens(
    served: tuple[WorkloadIssuer, Clock, str],
) -> None:
    keys, clock, url = served
    before = keys.token("service", "scorer", 1, "west")
    old_kid = jwt.get_unverified_header(before)["kid"]
    assert verify(before, url)["sub"] == "system:polycloud:risk:service:scorer:cluster:west"

    made = keys.rotate()
    assert kids(url) == [made["kid"], old_kid]  # published at once, before it signs
    clock.now += PUBLISH_S - 1
    assert jwt.get_unverified_header(keys.token("service", "scorer", 1, "west"))["kid"] == old_kid
    last_old = keys.token("service", "scorer", 1, "west")

    clock.now += 1  # the new key signs from now on
    after = keys.token("service", "scorer", 1, "west")
    assert jwt.get_unverified_header(after)["kid"] == made["kid"]
    for token in (before, last_old, after):
        assert verify(token, url)["project"] == "risk"

    clock.now += TTL_S + wl.LEEWAY_S - 1  # the old key's last token has just expired, within leeway
    assert old_kid in kids(url)
    clock.now += 1
    assert kids(url) == [made["kid"]]
    assert verify(after, url)["aud"] == "api://AzureADTokenExchange"


def test_the_documents_need_no_token_and_the_rest_still_does(
    served: tuple[WorkloadIssuer, Clock, str],
) -> None:
    _, _, url = served
    discovery = httpx.get(f"{url}/.well-known/openid-configuration")

    assert discovery.status_code == 200 and discovery.json()["issuer"] == url
    assert httpx.get(f"{url}/.well-known/jwks.json").status_code == 200
    assert httpx.get(f"{url}/api/v1/status").status_code == 401
    assert httpx.post(f"{url}/api/v1/identity/rotate").status_code == 401


def test_racing_servers_make_one_first_key_kept_out_of_the_secrets_list(store: Store, tmp_path: Path) -> None:
    servers = [issuer(store, tmp_path, "https://id.example.com", Clock()) for _ in range(4)]
    seen: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda s=s: seen.append([k["kid"] for k in s.jwks()["keys"]]))
        for s in servers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 4 and all(s == seen[0] and len(s) == 1 for s in seen)
    assert store.secrets() == []
    token = servers[3].token("service", "scorer", 1, "west")  # another server's key opens here too
    assert jwt.get_unverified_header(token)["kid"] == seen[0][0]


def test_a_token_names_the_declared_project_cluster_and_audience(store: Store, tmp_path: Path) -> None:
    keys = issuer(store, tmp_path, "https://id.example.com", Clock())
    body = jwt.decode(keys.token("service", "scorer", 1, "west"), options={"verify_signature": False})

    assert body["aud"] == "api://AzureADTokenExchange"
    assert (body["project"], body["service"], body["cluster"]) == ("risk", "scorer", "west")
    assert (body["provider"], body["region"]) == ("acme", "lisbon")
    assert body["exp"] - body["iat"] == TTL_S
    with pytest.raises(PermanentError, match="cluster east is not declared"):
        keys.token("service", "scorer", 1, "east")
    with pytest.raises(PermanentError, match="revision 9 is unknown"):
        keys.token("service", "scorer", 9, "west")
