"""Inference keys end to end: `polycloud key create` closes a service at the real gateway, which then
enforces the key's rate limit and monthly quota and reports usage back to the store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import Polycloud
from tests.e2e.fleets import Fleet, ServiceDecl

pytestmark = pytest.mark.e2e

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_keys_close_a_service_and_enforce_rate_and_quota(
    polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    fleet = Fleet(tmp_path, model, ("acme",), (ServiceDecl("alpha", ("acme",), replicas=1),))
    polycloud.ok("apply", fleet.write(), "--yes")
    status = polycloud.expect_exactly(fleet)
    url = f"{status['gateway']['url']}/v2/models/alpha/infer"
    http = httpx.Client(timeout=10, trust_env=False)
    assert http.post(url, json=BODY).status_code == 200  # no key yet: open

    created = polycloud.ok("key", "create", "alpha", "--rps", "0.2", "--burst", "2", "--monthly-quota", "3")
    key = created.stdout.strip()
    assert key.startswith("pk_") and "only time the key is shown" in created.stderr
    polycloud.eventually(lambda: http.post(url, json=BODY).status_code == 401, "the gateway to require a key")

    wrong = http.post(url, json=BODY, headers={"x-api-key": "pk_wrong"})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["error"]
    auth = {"authorization": f"Bearer {key}"}
    assert [http.post(url, json=BODY, headers=auth).status_code for _ in range(2)] == [200, 200]
    limited = http.post(url, json=BODY, headers=auth)
    assert limited.status_code == 429 and "rate limit" in limited.json()["error"]
    assert int(limited.headers["retry-after"]) >= 1
    time.sleep(5.2)  # one token back at 0.2/s
    assert http.post(url, json=BODY, headers={"x-api-key": key}).status_code == 200
    time.sleep(5.2)
    over = http.post(url, json=BODY, headers=auth)
    assert over.status_code == 429 and "monthly quota of 3 requests" in over.json()["error"]

    def used() -> int | None:
        rows = json.loads(polycloud.ok("key", "list", "--json").stdout)
        return rows[0]["usedThisMonth"] if rows[0]["usedThisMonth"] == 3 else None

    assert polycloud.eventually(used, "usage to reach the store") == 3
    listing = polycloud.ok("key", "list").stdout
    assert key not in listing and key[:10] in listing

    key_id = json.loads(polycloud.ok("key", "list", "--json").stdout)[0]["id"]
    polycloud.ok("key", "revoke", str(key_id))
    polycloud.eventually(
        lambda: http.post(url, json=BODY, headers=auth).status_code == 401, "the revoked key to be refused"
    )
    assert http.post(url, json=BODY).status_code == 401  # revoking every key does not open the service
    # apply of a service behind keys waits on what the gateways report to the API, not on a keyless probe
    # of the gateway (which answers 401: apply used to wait 180 s and fail).
    changed = Fleet(
        tmp_path, model, ("acme",), (ServiceDecl("alpha", ("acme",), replicas=1, env={"MODE": "b"}),)
    )
    polycloud.ok("apply", changed.write(), "--yes")
    status = polycloud.expect_exactly(changed)
    revision = status["services"][0]["revision"]
    assert all(revision in g["routes"]["alpha"] for g in status["controlPlane"]["gateways"])
    rc, out, err = polycloud.cli("key", "create", "no-such-service")
    assert rc == 1 and "no live Service named 'no-such-service'" in err and "Traceback" not in out + err
    http.close()
