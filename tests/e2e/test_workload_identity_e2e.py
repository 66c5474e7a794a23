"""Workload identity as a cloud sees it: a service's replica and a job on the local driver each read the
token file their environment names (`POLYCLOUD_IDENTITY_TOKEN_FILE`), and PyJWT verifies both against
the discovery document and JWK Set the running control plane serves without a token, before and after
`polycloud identity rotate`."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import psutil
import pytest
import yaml
from tests.e2e.conftest import Polycloud
from tests.e2e.fleets import Fleet

pytestmark = pytest.mark.e2e

AUDIENCE = "sts.amazonaws.com"
GCP_AUDIENCE = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/polycloud"
COPY = "import os, shutil, sys; shutil.copy(os.environ['POLYCLOUD_IDENTITY_TOKEN_FILE'], sys.argv[1])"


def documents(fleet: Fleet, out: Path) -> list[dict[str, Any]]:
    """Two sites (acme: the default audience; borealis: GCP's), the service `alpha` in project risk on
    acme, and a job that copies its token out and ends."""
    bare = fleet.without("beta")
    docs = bare.documents()
    clusters = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Cluster"}
    clusters["borealis"]["spec"]["identity"] = {"audience": GCP_AUDIENCE}
    alpha = next(d for d in docs if d["kind"] == "Service")
    alpha["metadata"]["labels"] = {"project": "risk"}
    alpha["spec"] |= {"replicas": 1, "pattern": "single", "placement": {"clusters": ["acme"]}}
    job = {
        "apiVersion": "polycloud/v1",
        "kind": "Job",
        "metadata": {"name": "fetch"},
        "spec": {
            "resources": {"vcpus": 1},
            "hours": 1,
            "command": [sys.executable, "-c", COPY, str(out)],
            "placement": {"clusters": ["borealis"]},
        },
    }
    return [*docs, job]


def verify(token: str, api_url: str, audience: str) -> dict[str, Any]:
    """A cloud's verification, all over HTTP and without credentials: discovery, JWKS, signature."""
    discovery = httpx.get(f"{api_url}/.well-known/openid-configuration", trust_env=False)
    discovery.raise_for_status()
    config = discovery.json()
    keys = jwt.PyJWKClient(config["jwks_uri"], cache_jwk_set=False, cache_keys=False)
    body: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=config["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=config["issuer"],
        options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp"]},
    )
    return body


def replica_token(polycloud: Polycloud) -> Path | None:
    """The token file the running replica's environment names."""
    for found in polycloud.replica_processes():
        named = psutil.Process(found.pid).environ().get("POLYCLOUD_IDENTITY_TOKEN_FILE")
        if named and Path(named).is_file():
            return Path(named)
    return None


def test_replicas_and_jobs_carry_tokens_the_published_keys_verify_across_a_rotation(
    polycloud: Polycloud, fleet: Fleet
) -> None:
    out = fleet.root / "job-token"
    spec = fleet.root / "identity.yaml"
    spec.write_text(yaml.safe_dump_all(documents(fleet, out), sort_keys=False))

    polycloud.ok("apply", spec, "--yes")
    api_url = str((polycloud.runinfo() or {})["api_url"])
    path = polycloud.eventually(lambda: replica_token(polycloud), "the replica's token file")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    served = verify(path.read_text(), api_url, AUDIENCE)
    assert served["iss"] == api_url
    assert served["sub"] == "system:polycloud:risk:service:alpha:cluster:acme"
    assert (served["project"], served["service"], served["provider"]) == ("risk", "alpha", "acme")
    assert served["exp"] - served["iat"] == 3600

    polycloud.eventually(lambda: out.is_file() and out.stat().st_size > 0, "the job to copy its token")
    trained = verify(out.read_text(), api_url, GCP_AUDIENCE)
    assert trained["sub"] == "system:polycloud:_fleet:job:fetch:cluster:borealis"
    assert (trained["job"], trained["cluster"]) == ("fetch", "borealis")

    before = httpx.get(f"{api_url}/.well-known/jwks.json", trust_env=False).json()["keys"]
    assert "new workload signing key" in polycloud.ok("identity", "rotate").stdout
    after = httpx.get(f"{api_url}/.well-known/jwks.json", trust_env=False).json()["keys"]
    assert len(after) == 2 and after[1] == before[0]  # the new key first; the old one still published
    assert verify(path.read_text(), api_url, AUDIENCE)["sub"] == served["sub"]  # still verifies
    entries = json.loads(polycloud.ok("audit", "log", "--json").stdout)
    assert any(e["action"] == "identity.rotate" and e["outcome"] == "ok" for e in entries)
    assert httpx.get(f"{api_url}/api/v1/status", trust_env=False).status_code == 401
