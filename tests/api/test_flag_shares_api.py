"""Flag shares through the API in-process: GET /api/v1/flags counts each flag's evaluations per variant
over a bounded window (from the gateways' per-minute counts), with the service each variant routes to;
a project's token sees every flag's shares but only its own project's routed services."""

from __future__ import annotations

from typing import Any

import pytest

from polycloud.exchange import FlagCount

from .conftest import CLUSTER, Governed, service


def flag(name: str, variants: dict[str, Any], default: str) -> dict[str, Any]:
    spec = {"state": "ENABLED", "variants": variants, "defaultVariant": default}
    return {"apiVersion": "polycloud/v1", "kind": "FeatureFlag", "metadata": {"name": name}, "spec": spec}


def routed(name: str, project: str, target: str) -> dict[str, Any]:
    doc = service(name, project)
    doc["spec"]["routing"] = {"flag": "canary", "variants": {"next": target}}
    return doc


@pytest.fixture
def fleet(governed: Governed) -> Governed:
    docs = [
        CLUSTER,
        service("alpha-svc", "alpha"),
        service("beta-svc", "beta"),
        routed("alpha-front", "alpha", "alpha-svc"),
        routed("beta-front", "beta", "beta-svc"),
        flag("canary", {"next": True, "stay": False}, "stay"),
        flag("theme", {"light": "l", "dark": "d"}, "light"),
    ]
    applied = governed.apply(governed.token("admin"), *docs)
    assert applied.status_code == 200, applied.text
    governed.store.add_flag_counts(
        "gw-1", [FlagCount("canary", "next", "", 30), FlagCount("canary", "stay", "", 60)]
    )
    governed.store.add_flag_counts(
        "gw-2", [FlagCount("canary", "stay", "", 9), FlagCount("canary", "", "GENERAL", 1)]
    )
    return governed


def listed(gov: Governed, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    answer = gov.client.get(f"/api/v1/flags{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    return {f["name"]: f for f in answer.json()}


def test_shares_per_variant_with_counts_errors_and_routes(fleet: Governed) -> None:
    flags = listed(fleet, fleet.token("viewer"))
    canary = flags["canary"]
    assert (canary["state"], canary["version"], canary["defaultVariant"]) == ("ENABLED", 1, "stay")
    evaluations = canary["evaluations"]
    assert (evaluations["windowS"], evaluations["total"]) == (900, 100)
    shares = [(s["variant"], s["error"], s["count"], s["share"]) for s in evaluations["shares"]]
    assert shares == [("next", None, 30, 0.3), ("stay", None, 69, 0.69), (None, "GENERAL", 1, 0.01)]
    routes = {s["variant"]: s["routesTo"] for s in evaluations["shares"] if s["variant"]}
    assert routes["next"] == [
        {"service": "alpha-front", "to": "alpha-svc", "revision": None},
        {"service": "beta-front", "to": "beta-svc", "revision": None},
    ]
    assert routes["stay"] == [
        {
            "service": "alpha-front",
            "to": "alpha-front",
            "revision": None,
        },  # a variant the routing does not list stays
        {"service": "beta-front", "to": "beta-front", "revision": None},
    ]
    theme = flags["theme"]["evaluations"]  # never evaluated: every variant at 0
    assert theme["total"] == 0 and [(s["variant"], s["share"]) for s in theme["shares"]] == [
        ("dark", 0.0),
        ("light", 0.0),
    ]
    assert flags["theme"]["routing"] == []


def test_a_projects_token_sees_the_shares_but_only_its_own_routes(fleet: Governed) -> None:
    canary = listed(fleet, fleet.token("viewer", "alpha"))["canary"]
    assert canary["evaluations"]["total"] == 100
    assert canary["routing"] == [{"service": "alpha-front", "variants": {"next": "alpha-svc"}}]
    [first, *_] = canary["evaluations"]["shares"]
    assert first["routesTo"] == [{"service": "alpha-front", "to": "alpha-svc", "revision": None}]


def test_the_window_is_bounded_with_a_clear_reason(fleet: Governed) -> None:
    viewer = fleet.token("viewer")
    assert listed(fleet, viewer, "?window=60")["canary"]["evaluations"]["windowS"] == 60
    for bad in ("59", "86401", "soon"):
        answer = fleet.client.get(f"/api/v1/flags?window={bad}", headers=viewer)
        assert answer.status_code == 400, answer.text
        assert "window" in answer.text
