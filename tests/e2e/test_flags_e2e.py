"""Feature flags end to end: FeatureFlag documents applied with `polycloud apply`, evaluated by the real
OpenFeature Python SDK through its OFREP provider against the real gateway process over the real store.

Covers every variant type, targeting, a percentage split within binomial bounds, the bulk endpoint's
ETag and 304, unknown flags, a bad context, the kill switch, inference keys (with the project the
gateway adds to the context), and evaluation while the control plane is stopped.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from tests.e2e.conftest import Polycloud, eventually
from tests.e2e.fleets import Fleet, ServiceDecl

pytestmark = pytest.mark.e2e

SPLIT_KEYS = 2000
"""Targeting keys evaluated for the 30/70 split (3 sigma of a binomial is ±61 of 600)."""


def flag(name: str, variants: dict[str, Any], default: str | None, **more: Any) -> dict[str, Any]:
    spec = {"state": "ENABLED", "variants": variants, "defaultVariant": default, **more}
    return {"apiVersion": "polycloud/v1", "kind": "FeatureFlag", "metadata": {"name": name}, "spec": spec}


def flags(ranker_state: str = "ENABLED") -> list[dict[str, Any]]:
    ranker = flag(
        "new-ranker",
        {"on": True, "off": False},
        "off",
        targeting={
            "if": [{"==": [{"var": "region"}, "eu"]}, "on", {"fractional": [["on", 30], ["off", 70]]}]
        },
    )
    ranker["spec"]["state"] = ranker_state
    beta = {"if": [{"ends_with": [{"var": "email"}, "@acme.eu"]}, "dark", "light"]}
    team = {"if": [{"==": [{"var": "project"}, "ranking"]}, "team", "everyone"]}
    return [
        ranker,
        flag("theme", {"light": "light", "dark": "dark"}, "light", targeting=beta),
        flag("max-tokens", {"small": 256, "large": 4096}, "small"),
        flag("temperature", {"cold": 0.2, "warm": 0.9}, "warm"),
        flag("layout", {"grid": {"columns": 3, "dense": True}, "list": {"columns": 1}}, "grid"),
        flag("audience", {"team": "team", "everyone": "everyone"}, "everyone", targeting=team),
    ]


def write(root: Path, model: Path, ranker_state: str = "ENABLED") -> tuple[Fleet, list[Path]]:
    fleet = Fleet(root, model, ("acme",), (ServiceDecl("alpha", ("acme",), replicas=1),))
    documents = fleet.documents()
    documents[-1]["metadata"]["labels"] = {"project": "ranking"}
    (root / "fleet.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    (root / "flags.yaml").write_text(yaml.safe_dump_all(flags(ranker_state), sort_keys=False))
    return fleet, [root / "fleet.yaml", root / "flags.yaml"]


@pytest.fixture
def sdk() -> Iterator[None]:
    yield
    api.clear_providers()


def client_of(url: str, key: str | None = None) -> OpenFeatureClient:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    domain = f"e2e-{key is not None}"
    api.set_provider(OFREPProvider(url, headers_factory=lambda: headers, timeout=10), domain)
    return api.get_client(domain)


def test_flags_through_the_openfeature_sdk(
    polycloud: Polycloud, tmp_path: Path, model: Path, sdk: None
) -> None:
    fleet, files = write(tmp_path, model)
    polycloud.ok("apply", *files, "--yes")
    gateway = polycloud.expect_exactly(fleet)["gateway"]["url"]
    client = client_of(gateway)
    user = EvaluationContext("user-1", {"email": "ana@acme.eu"})

    # every variant type, as the SDK's typed calls ask for them
    assert client.get_string_value("theme", "none", user) == "dark"  # targeting: ends_with
    assert client.get_string_value("theme", "none", EvaluationContext("u2", {"email": "b@x.org"})) == "light"
    assert client.get_integer_value("max-tokens", 0, user) == 256
    assert client.get_float_value("temperature", 0.0, user) == 0.9
    assert client.get_object_value("layout", {}, user) == {"columns": 3, "dense": True}
    details = client.get_boolean_details("new-ranker", False, EvaluationContext("user-1", {"region": "eu"}))
    assert (details.value, details.variant, details.reason) == (True, "on", Reason.TARGETING_MATCH)

    # a percentage split hashes targetingKey: 30 % within 3 sigma, and stable for a key
    on = Counter(
        client.get_boolean_value("new-ranker", False, EvaluationContext(f"k{i}")) for i in range(SPLIT_KEYS)
    )
    assert abs(on[True] - 0.3 * SPLIT_KEYS) <= 3 * math.sqrt(SPLIT_KEYS * 0.3 * 0.7), on
    assert (
        len({client.get_boolean_value("new-ranker", False, EvaluationContext("k1")) for _ in range(5)}) == 1
    )

    # a wrong type, an unknown flag: the SDK's own errors, the code default
    mismatch = client.get_integer_details("theme", 5, user)
    assert (mismatch.value, mismatch.error_code) == (5, ErrorCode.TYPE_MISMATCH)
    missing = client.get_boolean_details("no-such-flag", True, user)
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    numeric_key = EvaluationContext(42)  # type: ignore[arg-type]  # what a careless caller sends
    invalid = client.get_boolean_details("new-ranker", True, numeric_key)
    assert (invalid.value, invalid.error_code) == (True, ErrorCode.INVALID_CONTEXT)
    assert invalid.error_message is not None and "targetingKey must be a string" in invalid.error_message

    with httpx.Client(base_url=gateway, trust_env=False, timeout=10) as http:
        bad = http.post("/ofrep/v1/evaluate/flags/theme", json={"context": ["not", "an", "object"]})
        assert bad.status_code == 400
        assert bad.json()["key"] == "theme" and bad.json()["errorCode"] == "INVALID_CONTEXT"
        assert "errorDetails" in bad.json()
        bulk = http.post("/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "user-1"}})
        assert bulk.status_code == 200 and len(bulk.json()["flags"]) == 6
        etag = bulk.headers["etag"]
        again = http.post(
            "/ofrep/v1/evaluate/flags",
            json={"context": {"targetingKey": "user-1"}},
            headers={"If-None-Match": etag},
        )
        assert again.status_code == 304

        # the kill switch: state DISABLED, applied like any document, answers the code default
        _, files = write(tmp_path, model, ranker_state="DISABLED")
        polycloud.ok("apply", *files, "--yes")
        eu = EvaluationContext("user-1", {"region": "eu"})
        killed = polycloud.eventually(
            lambda: (
                (d := client.get_boolean_details("new-ranker", False, eu)).reason == Reason.DISABLED and d
            ),
            "the disabled flag to reach the gateway",
        )
        assert killed.value is False and killed.error_code is None
        changed = http.post(
            "/ofrep/v1/evaluate/flags",
            json={"context": {"targetingKey": "user-1"}},
            headers={"If-None-Match": etag},
        )
        assert changed.status_code == 200 and changed.headers["etag"] != etag

        # a key anywhere in the fleet closes OFREP; the key's project joins the context
        key = polycloud.ok("key", "create", "alpha").stdout.strip()
        polycloud.eventually(
            lambda: http.post("/ofrep/v1/evaluate/flags/theme", json={}).status_code == 401,
            "OFREP to require a key",
        )
        keyed = client_of(gateway, key)
        assert keyed.get_string_value("audience", "none", EvaluationContext("u", {"project": "x"})) == "team"
        refused = client.get_string_details("theme", "none", user)
        assert refused.value == "none" and refused.error_code == ErrorCode.GENERAL

        # the control plane stops: the gateway answers from memory over the store it reads
        polycloud.kill_control_plane()
        assert keyed.get_string_value("theme", "none", user) == "dark"
        assert keyed.get_object_value("layout", {}, user) == {"columns": 3, "dense": True}
        metrics = http.get("/metrics").text
        counted = '_flag_evaluations_total{flag="new-ranker",reason="TARGETING_MATCH",variant="on"}'
        assert counted in metrics


BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_a_flag_routes_a_service_and_the_cli_flips_it(
    polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    fleet = Fleet(
        tmp_path,
        model,
        ("acme",),
        (ServiceDecl("alpha", ("acme",), replicas=1), ServiceDecl("beta", ("acme",), 1)),
    )
    documents = fleet.documents()
    alpha = next(d for d in documents if d["metadata"]["name"] == "alpha")
    alpha["spec"]["routing"] = {"flag": "canary", "variants": {"next": "beta"}}
    documents.append(flag("canary", {"next": True, "stay": False}, "next"))
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    polycloud.ok("apply", tmp_path / "fleet.yaml", "--yes")
    gateway = polycloud.expect_exactly(fleet)["gateway"]["url"]

    with httpx.Client(base_url=gateway, trust_env=False, timeout=10) as http:

        def served_by() -> str:
            answer = http.post("/v2/models/alpha/infer", json=BODY)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["model_name"])

        assert {served_by() for _ in range(5)} == {"beta"}
        assert "canary: v2, DISABLED" in polycloud.ok("flags", "disable", "canary").stdout
        polycloud.eventually(lambda: served_by() == "alpha", "the kill switch to move traffic back")
        polycloud.ok("flags", "rollback", "canary")
        polycloud.eventually(lambda: served_by() == "beta", "the rollback to route again")
        history = json.loads(polycloud.ok("flags", "history", "canary", "--json").stdout)
        assert [(v["version"], v["state"]) for v in history] == [
            (1, "ENABLED"),
            (2, "DISABLED"),
            (3, "ENABLED"),
        ]
        listed = polycloud.ok("flags", "list").stdout
        assert "canary" in listed and "v3" in listed
        audit = polycloud.ok("audit", "log", "--json").stdout
        assert "flag.disable" in audit and "flag.rollback" in audit


class RoutedLoad:
    """Closed-loop clients sending inference requests with targeting keys `prefix`N through a gateway;
    every outcome kept as (status, answering revision or the error)."""

    def __init__(self, gateway: str, prefix: str, clients: int = 3) -> None:
        self.outcomes: list[tuple[int, str]] = []
        self._halt = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(gateway, f"{prefix}{i}"), daemon=True)
            for i in range(clients)
        ]

    def __enter__(self) -> RoutedLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for(self, count: int) -> None:
        eventually(lambda: len(self.outcomes) >= count, f"{count} requests answered", 30)

    def _client(self, gateway: str, key: str) -> None:
        with httpx.Client(base_url=gateway, trust_env=False, timeout=30) as http:
            while not self._halt.is_set():
                try:
                    answer = http.post(
                        "/v2/models/alpha/infer", json=BODY, headers={"x-polycloud-targeting-key": key}
                    )
                    got = (
                        str(answer.json().get("model_version")) if answer.status_code == 200 else answer.text
                    )
                    self.outcomes.append((answer.status_code, got))
                except httpx.HTTPError as e:
                    self.outcomes.append((0, repr(e)))


def test_a_flag_routes_to_an_older_revision_until_routing_stops_naming_it(
    polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    first = Fleet(tmp_path, model, ("acme",), (ServiceDecl("alpha", ("acme",), 1, {"LEVEL": "a"}),))
    polycloud.ok("apply", first.write(), "--yes")  # r1
    second = first.with_env("alpha", LEVEL="b")
    polycloud.ok("apply", second.write(), "--yes")  # r2: a rolling update replaces r1's replica
    gateway = polycloud.expect_exactly(second)["gateway"]["url"]

    def routed(variants: dict[str, Any], version: dict[str, Any]) -> Path:
        documents = second.documents()
        documents[-1]["spec"]["routing"] = {"flag": "version", "variants": variants}
        documents.append(version)
        path = tmp_path / "routed.yaml"
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        return path

    beta = {"if": [{"starts_with": [{"var": "targetingKey"}, "beta-"]}, "old", "new"]}
    by_key = flag("version", {"old": "old", "new": "new"}, "new", targeting=beta)
    refused = polycloud.cli("apply", routed({"old": 1, "new": 9}, by_key), "--yes")
    assert refused.rc != 0
    assert re.search(
        r"routed\.yaml:\d+:\d+: spec\.routing\.variants\.new: 'alpha' has no revision 9 "
        r"\(its revisions are 1\.\.2\)",
        refused.stderr,
    ), refused.stderr

    polycloud.ok("apply", routed({"old": 1, "new": 2}, by_key), "--yes")  # r3; waits for r1 too
    (service,) = polycloud.api_status()["services"]
    assert (service["revision"], service["held"]) == ("r3", ["r1", "r2"])
    assert sorted(p.revision for p in polycloud.replica_processes()) == [1, 2]  # r2's runs r3 as is

    with httpx.Client(base_url=gateway, trust_env=False, timeout=10) as http:

        def revision(key: str) -> str:
            answer = http.post(
                "/v2/models/alpha/infer", json=BODY, headers={"x-polycloud-targeting-key": key}
            )
            assert answer.status_code == 200, answer.text
            return str(answer.json()["model_version"])

        polycloud.eventually(lambda: revision("beta-1") == "1", "the gateway to route beta keys to r1")
        assert {revision(f"beta-{i}") for i in range(5)} == {"1"}
        assert {revision(f"user-{i}") for i in range(5)} == {"2"}

        # SIGKILL r1's replica under load of keys routed to it: every request is answered (by r2
        # while r1 has no replica), and the reconciler brings r1 back.
        (held,) = [p for p in polycloud.replica_processes() if p.revision == 1]
        with RoutedLoad(gateway, "beta-") as load:
            load.wait_for(20)
            os.kill(held.pid, signal.SIGKILL)
            polycloud.eventually(
                lambda: any(p.revision == 1 and p.pid != held.pid for p in polycloud.replica_processes()),
                "the reconciler to restart r1's replica",
            )
            polycloud.eventually(lambda: revision("beta-1") == "1", "beta keys to reach r1 again")
            load.wait_for(len(load.outcomes) + 20)
        assert [o for o in load.outcomes if o[0] != 200] == [], "a request failed"
        assert {o[1] for o in load.outcomes} >= {"1"}

        everyone_old = flag("version", {"old": "old", "new": "new"}, "old")
        polycloud.ok("apply", routed({"old": 1, "new": 2}, everyone_old), "--yes")  # the flag only
        polycloud.eventually(lambda: revision("user-1") == "1", "the flip to reach the gateway", 10)
        assert {revision(f"user-{i}") for i in range(5)} == {"1"}
        polycloud.ok("flags", "disable", "version")  # the kill switch: the service's own revision
        polycloud.eventually(lambda: revision("user-1") == "2", "the kill switch to reach the gateway", 10)
        metrics = http.get("/metrics").text
        assert '_flag_evaluations_total{flag="version",reason="TARGETING_MATCH",variant="old"}' in metrics

        polycloud.ok("apply", second.write(), "--yes")  # r4: no routing, r1's replica goes
        polycloud.eventually(
            lambda: sorted(p.revision for p in polycloud.replica_processes()) == [2], "r1's replica to stop"
        )
        assert "held" not in polycloud.api_status()["services"][0]
        assert {revision(f"beta-{i}") for i in range(5)} == {"2"}
