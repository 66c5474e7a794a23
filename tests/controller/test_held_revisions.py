"""Revisions a flag routes to: the reconciler keeps (or starts) their replicas beside the service's own,
placed like the service, repairs them like any replica, and drops them once no routing names them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.controller.test_desired import lookup, service
from tests.support import WEST_SITE, build_model

from polycloud.catalog import load_catalog
from polycloud.cli.runtime import _ready_text
from polycloud.client.convergence import is_converged
from polycloud.controller.desired import Canary, cluster_delays, desired_state
from polycloud.controller.reconciler import Reconciler, _serving
from polycloud.controller.stepping import Actions
from polycloud.drivers.base import ReplicaSpec, ReplicaStatus
from polycloud.errors import SpecError
from polycloud.placement.sites import Point, build_site
from polycloud.services.applying import FleetService
from polycloud.services.inspecting import Endpoints, fleet_status
from polycloud.spec.models import Cluster
from polycloud.state import Store


class MemoryDriver:
    """A cluster whose replicas start ready at once and stay until stopped (or `lose`)."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.replicas: dict[str, ReplicaStatus] = {}
        self.started: list[ReplicaSpec] = []

    def list_replicas(self) -> list[ReplicaStatus]:
        return list(self.replicas.values())

    def start_replica(self, spec: ReplicaSpec) -> ReplicaStatus:
        self.started.append(spec)
        status = ReplicaStatus(
            spec.id,
            spec.service,
            spec.cluster,
            spec.revision,
            spec.role,
            spec.spec_hash,
            "ready",
            "http://h:1",
        )
        self.replicas[spec.id] = status
        return status

    def stop_replica(self, replica_id: str, grace_s: float = 10.0) -> None:
        self.replicas.pop(replica_id, None)

    def close(self) -> None:
        pass


FLAG = {
    "apiVersion": "polycloud/v1",
    "kind": "FeatureFlag",
    "metadata": {"name": "version"},
    "spec": {"state": "ENABLED", "variants": {"old": "old", "new": "new"}, "defaultVariant": "new"},
}


class World:
    def __init__(self, tmp_path: Path, store: Store) -> None:
        self.store = store
        self.model = build_model(tmp_path / "m.onnx")
        self.fleet = FleetService(store, load_catalog(), secret_names=lambda: set())
        self.driver = MemoryDriver("west")
        self.reconciler = Reconciler(
            store=store,
            catalog=load_catalog(),
            home=tmp_path,
            origin=Point(38.7, -9.1, ("aws", "eu-west-1")),
            make_driver=lambda kind, cluster, home: self.driver,
        )

    def apply(self, level: str, variants: dict[str, Any] | None = None) -> None:
        cluster = next(iter(yaml.safe_load_all(WEST_SITE)))
        spec: dict[str, Any] = {
            "model": {"path": str(self.model)},
            "resources": {"vcpus": 1, "memoryGiB": 1},
            "replicas": 2,
            "env": [{"name": "LEVEL", "value": level}],
        }
        documents: list[dict[str, Any]] = [cluster]
        if variants is not None:
            spec["routing"] = {"flag": "version", "variants": variants}
            documents.append(FLAG)
        service = {"apiVersion": "polycloud/v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": spec}
        self.fleet.apply([*documents, service], author="t", message="", dry_run=False)

    def settle(self) -> Actions:
        """Reconcile until a pass does nothing; returns every action taken."""
        done = Actions()
        for _ in range(20):
            actions = self.reconciler.step()
            if not actions.start and not actions.stop:
                return done
            done.start += actions.start
            done.stop += actions.stop
        raise AssertionError("the reconciler did not settle")

    def revisions(self) -> Counter[int]:
        """Recorded replicas per revision."""
        return Counter(r.revision for r in self.store.replicas())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        made = World(tmp_path, store)
        yield made
        made.reconciler.close()


def test_a_routed_revision_keeps_its_replicas_through_the_update(world: World) -> None:
    world.apply("a")
    world.settle()
    first = set(world.driver.replicas)
    world.apply("b", {"old": 1})  # r2: new content, and the flag may send requests to r1
    actions = world.settle()
    assert actions.stop == []  # r1's replicas are kept, not rolled
    assert first <= set(world.driver.replicas)
    assert world.revisions() == Counter({1: 2, 2: 2})
    assert {s.revision for s in actions.start} == {2}


def test_routing_starts_an_older_revision_and_drops_it_when_no_longer_named(world: World) -> None:
    world.apply("a")
    world.settle()
    world.apply("b")
    world.settle()
    assert world.revisions() == Counter({2: 2})
    world.apply("b", {"old": 1, "new": 2})  # r3: runs as r2 does; r1 comes back for the flag
    started = world.settle().start
    assert [(s.revision, s.env["LEVEL"]) for s in started] == [(1, "a"), (1, "a")]
    assert {s.role for s in started} == {"active"}
    assert world.revisions() == Counter({1: 2, 3: 2})  # r2's replicas run r3's content: labelled r3
    assert world.settle().start == []  # drift repair leaves them be

    lost = next(i for i, r in world.driver.replicas.items() if r.revision == 1)
    world.driver.replicas.pop(lost)  # a held replica dies: repaired like any other
    assert [s.revision for s in world.settle().start] == [1]

    world.apply("b")  # r4: no routing
    actions = world.settle()
    assert actions.start == [] and len(actions.stop) == 2
    assert world.revisions() == Counter({4: 2})


def test_a_held_revision_that_runs_what_the_service_runs_needs_no_replicas(world: World) -> None:
    world.apply("a")
    world.settle()
    world.apply("a", {"old": 1})  # r2 runs what r1 runs: its replicas serve both
    assert world.settle().start == []
    assert world.revisions() == Counter({2: 2})


def test_the_baseline_of_a_rollout_is_not_a_revision_held_for_a_flag() -> None:
    ready = {"svc": Counter({1: 4, 3: 2}), "other": Counter({1: 2})}
    assert _serving(ready, {}) == {"svc": 1, "other": 1}
    assert _serving(ready, {"svc": {1}, "other": {1}}) == {"svc": 3, "other": 1}  # only r1: still r1


def test_status_lists_held_revisions_and_apply_waits_on_them_without_counting_them(world: World) -> None:
    world.apply("a")
    world.settle()
    world.apply("b", {"old": 1})
    world.settle()
    status = fleet_status(world.store, Endpoints("http://api", "http://gw"))
    (svc,) = status["services"]
    assert svc["revision"] == "r2" and svc["held"] == ["r1"]
    assert is_converged(status)
    (cluster,) = svc["clusters"]
    cluster["replicas"][0]["state"] = "starting"  # a held replica (sorted first) not ready yet
    assert cluster["replicas"][0]["revision"] == "r1" and not is_converged(status)
    del svc["held"]
    cluster["replicas"][0]["state"] = "ready"
    assert not is_converged(status)  # without `held`, r1's replicas are outdated ones


def test_apply_refuses_a_revision_the_service_does_not_have(world: World) -> None:
    with pytest.raises(SpecError) as caught:
        world.apply("a", {"old": 1})  # a new service: nothing recorded yet
    assert "spec.routing.variants.old: 'svc' has no revision 1 (it has no revision yet)" in str(caught.value)
    world.apply("a")
    with pytest.raises(SpecError) as caught:
        world.apply("b", {"old": 1, "new": 7})
    assert "spec.routing.variants.new: 'svc' has no revision 7 (its revisions are 1..1)" in str(caught.value)
    assert [r.number for r in world.store.history("svc")] == [1]


def test_held_groups_stand_beside_a_canary_but_never_double_its_baseline() -> None:
    r1, r2, r3 = (service(n, {"TOKEN": t}) for n, t in ((1, "token"), (2, "other"), (3, "token")))
    during = desired_state(
        [r3], {"c1": 0.0}, secrets=lookup, canaries={"svc": Canary(r2, 25)}, held={"svc": [r1]}
    )
    assert during.held == {}  # r1 runs what the canary r3 runs: its replicas serve r1's variant
    held = desired_state(
        [r3], {"c1": 0.0}, secrets=lookup, canaries={"svc": Canary(r1, 25)}, held={"svc": [r2]}
    )
    ((group,),) = held.held.values()
    assert (group.template.revision, group.count) == (2, 4)  # placed and sized like the service
    missing = desired_state(
        [r3], {"c1": 0.0}, secrets=lambda n, p: None if n == "other" else "x", held={"svc": [r2]}
    )
    assert missing.held == {} and missing.unheld == {("svc", 2): "secret 'other' does not exist"}


def test_autoscaling_and_failover_do_not_count_held_replicas(world: World) -> None:
    world.apply("a")
    world.settle()
    world.apply("b", {"old": 1})
    world.settle()
    reconciler, catalog = world.reconciler, load_catalog()
    clusters = {d.name: Cluster.model_validate(d.spec) for d in world.store.documents("Cluster")}
    sites = {name: build_site(c, catalog) for name, c in clusters.items()}
    delays = cluster_delays(sites, {"west": None}, catalog, reconciler.origin)
    workloads = world.store.current()
    held = reconciler._held(workloads)
    observed = {"west": world.driver.list_replicas()}
    own = reconciler._without_held(observed, workloads, delays, {}, held)
    assert sorted(r.revision for r in observed["west"]) == [1, 1, 2, 2]
    assert sorted(r.revision for r in own["west"]) == [2, 2]


def test_the_status_table_tells_held_replicas_from_outdated_ones() -> None:
    svc = {"revision": "r3", "held": ["r1"]}
    replicas = [{"revision": r, "state": "ready"} for r in ("r1", "r1", "r2", "r3")]
    cluster = {"ready": 1, "desired": 1, "replicas": replicas}
    assert _ready_text(svc, cluster) == "1/1 (+2 of r1 for its flag) (+1 on older revisions)"
    assert _ready_text({"revision": "r3"}, {**cluster, "replicas": replicas[3:]}) == "1/1"
