"""Workload identity benchmark: what a token costs the control plane, and a verifier.

    .venv/bin/python bench/identity_bench.py [--tokens 500] [--work DIR]

In process, on a SQLite state store holding one Cluster and one Service revision:

1. making a signing key (RSA 2048, sealed into the store): the first token's extra cost, and a
   rotation's;
2. `WorkloadIssuer.token`: the revision and Cluster read from the store, claims, RS256 signature (what
   each replica start and each renewal at half life costs the leader);
3. `WorkloadIssuer.jwks`: the JWK Set document (what a JWKS request costs before HTTP);
4. PyJWT's verification of one token with the published key (what a cloud's STS does).

Each figure is the median and p99 of `--tokens` calls, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from polycloud.catalog import load_catalog
from polycloud.secrets import LocalKeyWrapper
from polycloud.server.workload import WorkloadIssuer
from polycloud.services.applying import FleetService
from polycloud.state import Store

FLEET: list[dict[str, Any]] = [
    {
        "apiVersion": "polycloud/v1",
        "kind": "Cluster",
        "metadata": {"name": "west"},
        "spec": {
            "provider": "acme",
            "region": "lisbon",
            "location": {"lat": 38.7, "lon": -9.1},
            "instances": [{"name": "cpu4", "vcpus": 4, "memoryGiB": 16, "hourlyUSD": 0.12}],
        },
    },
    {
        "apiVersion": "polycloud/v1",
        "kind": "Service",
        "metadata": {"name": "scorer", "labels": {"project": "risk"}},
        "spec": {"runtime": {"command": ["true"]}, "resources": {"vcpus": 1, "memoryGiB": 1}},
    },
]


def timed(call: Callable[[], object], times: int) -> tuple[float, float]:
    """Median and p99 of `times` calls, in milliseconds."""
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        spent.append((time.perf_counter() - start) * 1000)
    spent.sort()
    return statistics.median(spent), spent[min(len(spent) - 1, int(len(spent) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="polycloud-identity-bench-"))
    store = Store.open(f"sqlite:///{work / 'state.db'}")
    FleetService(store, load_catalog()).apply(FLEET, author="bench", message="", dry_run=False)
    issuer = WorkloadIssuer(store, LocalKeyWrapper.load(None, work), "https://id.example.com")

    start = time.perf_counter()
    token = issuer.token("service", "scorer", 1, "west")
    print(f"first token (makes the key): {(time.perf_counter() - start) * 1000:.1f} ms")
    start = time.perf_counter()
    issuer.rotate()
    print(f"rotation (a new key):        {(time.perf_counter() - start) * 1000:.1f} ms")
    key = jwt.PyJWK(issuer.jwks()["keys"][-1]).key
    figures = {
        "token (store reads + RS256)": timed(
            lambda: issuer.token("service", "scorer", 1, "west"), args.tokens
        ),
        "jwks document": timed(issuer.jwks, args.tokens),
        "verify (PyJWT, RS256)": timed(
            lambda: jwt.decode(token, key, algorithms=["RS256"], audience="sts.amazonaws.com"), args.tokens
        ),
    }
    for name, (median, p99) in figures.items():
        print(f"{name:28} median {median:6.2f} ms   p99 {p99:6.2f} ms")
    store.close()


if __name__ == "__main__":
    main()
