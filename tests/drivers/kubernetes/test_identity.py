"""Workload identity on Kubernetes: each service's pods mount a token Secret the driver applies before
the first replica and replaces once the token is past half its life (the kubelet then swaps it in)."""

from __future__ import annotations

import base64

import jwt

from polycloud.drivers.kubernetes.manifests import IDENTITY_DIR

from ..support import Signer
from .conftest import MakeDriver
from .fake_api import FakeApiServer
from .test_driver import spec

SECRET = "polycloud-identity.fraud"


def token_of(fake: FakeApiServer) -> str:
    found = fake.get("Secret", SECRET)
    assert found is not None
    return base64.b64decode(found["data"]["token"]).decode()


def test_pods_mount_a_token_secret_that_is_renewed_past_half_its_life(
    fake: FakeApiServer, make_driver: MakeDriver
) -> None:
    signer = Signer()
    signer.age_s = 1800  # the first token is issued half an hour ago: due at once
    driver = make_driver(identity=signer, renew_interval_s=0.0)
    driver.start_replica(spec(0))
    first = token_of(fake)
    assert jwt.decode(first, options={"verify_signature": False})["sub"] == (
        "system:polycloud:risk:service:fraud:cluster:eks-use1"
    )
    deployment = next(fake.get("Deployment", n) for n in fake.names("Deployment"))
    assert deployment is not None
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "identity", "mountPath": IDENTITY_DIR, "readOnly": True} in server["volumeMounts"]

    signer.age_s = 0
    driver.list_replicas()  # the renewal pass replaces the due token
    renewed = token_of(fake)
    assert renewed != first and len(signer.asked) == 2
    driver.start_replica(spec(1))
    driver.list_replicas()
    assert token_of(fake) == renewed and len(signer.asked) == 2  # fresh: left alone
