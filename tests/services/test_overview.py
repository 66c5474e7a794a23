"""The dashboard's overview: cluster health, traffic arcs that follow the ready clusters, data arcs."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support import EXAMPLE_MODEL, viewer_token

from polycloud.catalog import load_catalog
from polycloud.services.applying import FleetService
from polycloud.services.documents import fleet_to_documents
from polycloud.services.overview import overview, visible
from polycloud.spec import load_fleet
from polycloud.state import MemberInput, ReplicaRecord, Store


def site(name: str, lat: float, lon: float) -> dict[str, object]:
    return {
        "apiVersion": "polycloud/v1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "provider": f"dc-{name}",
            "region": name,
            "location": {"lat": lat, "lon": lon, "jurisdiction": "EU"},
            "instances": [{"name": "cpu", "vcpus": 8, "memoryGiB": 32, "hourlyUSD": 0.1}],
        },
    }


FLEET = [
    site("lisbon", 38.7, -9.1),
    site("warsaw", 52.2, 21.0),
    {
        "apiVersion": "polycloud/v1",
        "kind": "Dataset",
        "metadata": {"name": "events"},
        "spec": {"cluster": "lisbon", "sizeGB": 10},
    },
    {
        "apiVersion": "polycloud/v1",
        "kind": "Service",
        "metadata": {"name": "shop", "labels": {"project": "retail", "team": "web"}},
        "spec": {
            "model": {"path": "model.onnx"},
            "resources": {"vcpus": 1, "memoryGiB": 1},
            "replicas": 1,
            "pattern": "active-active",
            "traffic": [{"location": {"lat": 40.4, "lon": -3.7}, "share": 1.0}],  # Madrid
            "reads": [{"dataset": "events", "gbPerMonth": 5}],
        },
    },
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    shutil.copy(EXAMPLE_MODEL, tmp_path / "model.onnx")
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump_all(FLEET))
    catalog = load_catalog()
    documents = fleet_to_documents(load_fleet([tmp_path / "fleet.yaml"], catalog))
    opened = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    FleetService(opened, catalog).apply(documents, author="t", message="", dry_run=False)
    yield opened
    opened.close()


def replica(cluster: str, state: str) -> ReplicaRecord:
    return ReplicaRecord(
        id=f"shop-{cluster}-0",
        workload="shop",
        cluster=cluster,
        role="active",
        revision=1,
        endpoint=None,
        pid=None,
        state=state,  # type: ignore[arg-type]
    )


def test_traffic_goes_to_the_nearest_ready_cluster_and_moves_when_it_is_down(store: Store) -> None:
    store.replace_replicas([replica("lisbon", "ready"), replica("warsaw", "ready")])
    view = overview(store, load_catalog())
    assert {c["name"]: c["health"] for c in view["clusters"]} == {"lisbon": "up", "warsaw": "up"}
    traffic = [f for f in view["flows"] if f["kind"] == "traffic"]
    assert [(f["workload"], f["to"]) for f in traffic] == [("shop", "lisbon")]
    store.replace_replicas([replica("lisbon", "failed"), replica("warsaw", "ready")])
    view = overview(store, load_catalog())
    assert {c["name"]: c["health"] for c in view["clusters"]} == {"lisbon": "down", "warsaw": "up"}
    assert [f["to"] for f in view["flows"] if f["kind"] == "traffic"] == ["warsaw"]
    store.replace_replicas([])
    view = overview(store, load_catalog())
    assert [f["to"] for f in view["flows"] if f["kind"] == "traffic"] == [None]


def test_data_read_away_from_its_home_is_a_flow(store: Store) -> None:
    data = [f for f in overview(store, load_catalog())["flows"] if f["kind"] == "data"]
    assert data == [
        {
            "kind": "data",
            "workload": "shop",
            "dataset": "events",
            "from": "lisbon",
            "to": "warsaw",
            "gbPerMonth": 5.0,
        }
    ]


def test_a_project_token_sees_its_own_services_and_every_cluster(store: Store) -> None:
    view = overview(store, load_catalog())
    other = viewer_token("other")
    narrowed = visible(view, other)
    assert narrowed["services"] == [] and narrowed["flows"] == []
    assert len(narrowed["clusters"]) == 2
    own = viewer_token("retail")
    assert visible(view, own)["services"][0]["team"] == "web"


def test_a_replica_in_an_undeclared_cluster_is_listed_under_its_service_only(store: Store) -> None:
    store.replace_replicas([replica("lisbon", "ready"), replica("gone", "ready")])
    view = overview(store, load_catalog())
    assert [c["name"] for c in view["clusters"]] == ["lisbon", "warsaw"]
    shop = view["services"][0]
    assert [c["cluster"] for c in shop["clusters"]] == ["lisbon", "warsaw", "gone"]


def test_the_overview_names_the_leader_and_the_members(store: Store) -> None:
    store.acquire_lease("srv-a", ttl_s=30)
    store.heartbeat(MemberInput("srv-a", "server", "http://127.0.0.1:8700", "h", 10))
    store.heartbeat(MemberInput("gw-1", "gateway", "http://127.0.0.1:8080", "h", 11))
    plane = overview(store, load_catalog())["controlPlane"]
    assert (plane["leader"], plane["epoch"]) == ("srv-a", 1)
    assert [(s["id"], s["leader"], s["pid"]) for s in plane["servers"]] == [("srv-a", True, None)]
    assert [g["id"] for g in plane["gateways"]] == ["gw-1"]


def test_a_revision_kept_for_a_flags_routing_is_named(store: Store, tmp_path: Path) -> None:
    assert overview(store, load_catalog())["services"][0]["held"] == []
    flag = {
        "apiVersion": "polycloud/v1",
        "kind": "FeatureFlag",
        "metadata": {"name": "shop-model"},
        "spec": {"state": "ENABLED", "variants": {"old": "old", "new": "new"}, "defaultVariant": "new"},
    }
    routed = copy.deepcopy(FLEET[3])
    routed["spec"]["routing"] = {"flag": "shop-model", "variants": {"old": 1}}  # type: ignore[index]
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump_all([*FLEET[:3], routed, flag]))
    catalog = load_catalog()
    documents = fleet_to_documents(load_fleet([tmp_path / "fleet.yaml"], catalog))
    FleetService(store, catalog).apply(documents, author="t", message="", dry_run=False)
    (shop,) = overview(store, catalog)["services"]
    assert (shop["revision"], shop["held"]) == ("r2", ["r1"])
