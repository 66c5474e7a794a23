"""The Kubernetes driver against the recorded API stand-in, through the real `kubernetes` client."""

from __future__ import annotations

import base64
import json

import pytest
from tests.support import wait_until

from polycloud.drivers.base import ReplicaSpec
from polycloud.drivers.kubernetes import KubernetesDriver
from polycloud.drivers.kubernetes.manifests import REPLICAS_ANNOTATION
from polycloud.drivers.registry import create_driver
from polycloud.errors import PermanentError, TransientError

from .conftest import MakeDriver, MemorySpecs
from .fake_api import FakeApiServer

V1 = "0123456789abcdef"
V2 = "fedcba9876543210"
GROUP_V1 = f"fraud-{V1[:10]}"
GROUP_V2 = f"fraud-{V2[:10]}"


def spec(ordinal: int, *, revision: int = 1, spec_hash: str = V1) -> ReplicaSpec:
    return ReplicaSpec(
        id=f"fraud-eks-use1-{ordinal}",
        service="fraud",
        cluster="eks-use1",
        revision=revision,
        role="active",
        spec_hash=spec_hash,
        model_path="models/fraud.onnx",
        model_sha256="a" * 64 if revision == 1 else None,
        env={"LOG_LEVEL": "info", "API_TOKEN": "s3cr3t"} if revision == 1 else {},
    )


def states(driver: KubernetesDriver) -> dict[str, str]:
    return {s.id: s.state for s in driver.list_replicas()}


def wait_states(driver: KubernetesDriver, want: dict[str, str]) -> None:
    wait_until(lambda: states(driver) == want, 10, f"replicas {want}")


def ids_of(fake: FakeApiServer, deployment: str) -> list[str]:
    found = fake.get("Deployment", deployment)
    assert found is not None
    return list(json.loads(found["metadata"]["annotations"][REPLICAS_ANNOTATION]))


def test_create_applies_secret_service_and_deployment_server_side(
    fake: FakeApiServer, make_driver: MakeDriver
) -> None:
    driver = make_driver()
    started = driver.start_replica(spec(0))
    assert started.state == "starting"
    assert started.endpoint == "http://fraud.ml.svc.cluster.local"
    applies = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.body["kind"] for r in applies] == ["Secret", "Service", "Deployment"]
    for r in applies:
        assert r.content_type == "application/apply-patch+yaml"
        assert r.query["fieldManager"] == "polycloud" and r.query["force"] == "true"
    dep = fake.get("Deployment", GROUP_V1)
    assert dep is not None and dep["spec"]["replicas"] == 1
    container = dep["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in container["env"] if e["name"] == "API_TOKEN")
    assert token == {
        "name": "API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "polycloud-fraud-token", "key": "value"}},
    }
    assert "s3cr3t" not in json.dumps(dep)  # the value lives only in the Secret
    secret = fake.get("Secret", "polycloud-fraud-token")
    assert secret is not None and base64.b64decode(secret["data"]["value"]) == b"s3cr3t"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    wait_states(driver, {"fraud-eks-use1-0": "starting"})


def test_readiness_follows_the_pods_through_the_watch(fake: FakeApiServer, make_driver: MakeDriver) -> None:
    driver = make_driver()
    driver.start_replica(spec(0))
    driver.start_replica(spec(1))
    wait_states(driver, {"fraud-eks-use1-0": "starting", "fraud-eks-use1-1": "starting"})
    fake.set_ready(GROUP_V1, 1)
    wait_states(driver, {"fraud-eks-use1-0": "ready", "fraud-eks-use1-1": "starting"})
    fake.set_ready(GROUP_V1)
    wait_states(driver, {"fraud-eks-use1-0": "ready", "fraud-eks-use1-1": "ready"})
    status = next(s for s in driver.list_replicas() if s.id == "fraud-eks-use1-1")
    assert (status.revision, status.spec_hash, status.role, status.pid) == (1, V1, "active", None)


def test_reapplying_the_same_replica_is_idempotent(fake: FakeApiServer, make_driver: MakeDriver) -> None:
    driver = make_driver()
    driver.start_replica(spec(0))
    version = (fake.get("Deployment", GROUP_V1) or {})["metadata"]["resourceVersion"]
    again = driver.start_replica(spec(0))
    assert again.id == "fraud-eks-use1-0"
    dep = fake.get("Deployment", GROUP_V1) or {}
    assert dep["metadata"]["resourceVersion"] == version  # the Deployment was not written again
    assert ids_of(fake, GROUP_V1) == ["fraud-eks-use1-0"]
    assert len(fake.names("Pod")) == 1


def test_scale_up_and_down_and_delete_at_zero(fake: FakeApiServer, make_driver: MakeDriver) -> None:
    driver = make_driver()
    for i in range(3):
        driver.start_replica(spec(i))
    assert (fake.get("Deployment", GROUP_V1) or {})["spec"]["replicas"] == 3
    assert len(fake.names("Pod")) == 3
    fake.set_ready(GROUP_V1, 2)
    wait_until(lambda: sum(s == "ready" for s in states(driver).values()) == 2, 10, "two ready")
    driver.stop_replica("fraud-eks-use1-2")
    assert ids_of(fake, GROUP_V1) == ["fraud-eks-use1-0", "fraud-eks-use1-1"]
    patch = fake.requests[-1]
    assert (patch.method, patch.content_type) == ("PATCH", "application/merge-patch+json")
    assert patch.body["spec"] == {"replicas": 2} and "resourceVersion" in patch.body["metadata"]
    wait_until(lambda: len(fake.names("Pod")) == 2, 5, "a pod removed")
    driver.stop_replica("fraud-eks-use1-0")
    driver.stop_replica("fraud-eks-use1-1")
    assert fake.get("Deployment", GROUP_V1) is None
    wait_states(driver, {})


def test_rolling_update_is_two_deployments_the_controller_moves_between(
    fake: FakeApiServer, make_driver: MakeDriver
) -> None:
    driver = make_driver()
    driver.start_replica(spec(0))
    fake.set_ready(GROUP_V1)
    driver.start_replica(spec(1, revision=2, spec_hash=V2))  # surge one of the new revision
    wait_states(driver, {"fraud-eks-use1-0": "ready", "fraud-eks-use1-1": "starting"})
    fake.set_ready(GROUP_V2)
    wait_states(driver, {"fraud-eks-use1-0": "ready", "fraud-eks-use1-1": "ready"})
    driver.stop_replica("fraud-eks-use1-0")
    assert fake.names("Deployment") == [GROUP_V2]
    new = fake.get("Deployment", GROUP_V2) or {}
    assert new["metadata"]["labels"]["polycloud.dev/revision"] == "2"
    assert fake.names("Service") == ["fraud"]  # one Service in front of both, throughout


def test_a_crashing_pod_is_a_failed_replica_with_the_kubelets_reason(
    fake: FakeApiServer, make_driver: MakeDriver
) -> None:
    driver = make_driver()
    driver.start_replica(spec(0))
    fake.crash(GROUP_V1)
    wait_states(driver, {"fraud-eks-use1-0": "failed"})
    failed = driver.list_replicas()[0]
    assert "CrashLoopBackOff" in failed.message and "back-off 10s" in failed.message


def test_conflict_when_another_writer_changed_the_deployment(
    fake: FakeApiServer, make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = make_driver()
    driver.start_replica(spec(0))
    stale = fake.get("Deployment", GROUP_V1)
    fake.set_ready(GROUP_V1)  # another writer (the deployment controller) bumps resourceVersion
    monkeypatch.setattr(driver._api, "get", lambda kind, name: stale)
    with pytest.raises(TransientError, match=r"409 Conflict.*the object has been modified"):
        driver.start_replica(spec(1))
    assert ids_of(fake, GROUP_V1) == ["fraud-eks-use1-0"]  # nothing lost, nothing half-written


def test_stopping_a_replica_that_is_gone_is_quiet(fake: FakeApiServer, make_driver: MakeDriver) -> None:
    driver = make_driver()
    driver.stop_replica("fraud-eks-use1-9")  # never existed
    driver.start_replica(spec(0))
    wait_states(driver, {"fraud-eks-use1-0": "starting"})
    with fake.lock:  # someone deletes it behind our back: our DELETE would get a 404 NotFound
        fake.objects.pop(("Deployment", "ml", GROUP_V1))
    driver.stop_replica("fraud-eks-use1-0")
    assert not [r for r in fake.requests if r.method == "DELETE"]  # a read saw it gone: nothing to do
    assert driver._api.delete("Deployment", GROUP_V1) is False  # and a 404 on delete is not an error
    assert fake.requests[-1].method == "DELETE"


def test_watch_streams_end_on_timeout_and_are_renewed(fake: FakeApiServer, make_driver: MakeDriver) -> None:
    driver = make_driver(watch_timeout_s=1)
    driver.list_replicas()
    wait_until(lambda: driver.deployments.watches >= 3, 10, "three watch streams")
    watches = [r for r in fake.requests if r.query.get("watch") == "true"]
    assert all(r.query["timeoutSeconds"] == "1" and r.query["allowWatchBookmarks"] == "true" for r in watches)
    driver.start_replica(spec(0))  # changes after several renewals still arrive
    fake.set_ready(GROUP_V1)
    wait_states(driver, {"fraud-eks-use1-0": "ready"})


def test_an_expired_watch_relists_and_serves_the_cache_meanwhile(
    fake: FakeApiServer, make_driver: MakeDriver
) -> None:
    driver = make_driver(watch_timeout_s=1)
    driver.start_replica(spec(0))
    wait_states(driver, {"fraud-eks-use1-0": "starting"})
    lists_before = sum(1 for r in fake.requests if r.method == "GET" and "watch" not in r.query)
    fake.partitioned = True  # the streams go quiet while things change and etcd compacts
    fake.put(_foreign_deployment())
    fake.compact()
    seen: list[dict[str, str]] = []
    wait_until(lambda: seen.append(states(driver)) or "other-0" in seen[-1], 10, "a relist after 410")
    assert sum(1 for r in fake.requests if r.method == "GET" and "watch" not in r.query) > lists_before

    def resumed() -> bool:  # the watch after the relist starts from it (it follows the relist by a moment)
        watches = [r for r in fake.requests if r.query.get("watch") == "true"]
        return int(watches[-1].query["resourceVersion"]) >= fake.compacted_below

    wait_until(resumed, 10, "a watch resumed from the relist")
    assert all(s.get("fraud-eks-use1-0") == "starting" for s in seen)  # the cache served throughout
    fake.partitioned = False


def test_quota_exceeded_is_transient_and_says_so(fake: FakeApiServer, make_driver: MakeDriver) -> None:
    fake.deployment_quota = 1
    driver = make_driver()
    driver.start_replica(spec(0))
    with pytest.raises(TransientError, match=r"403 Forbidden.*exceeded quota.*ResourceQuota is full"):
        driver.start_replica(spec(1, revision=2, spec_hash=V2))


def test_pods_over_quota_show_as_failed_replicas(fake: FakeApiServer, make_driver: MakeDriver) -> None:
    fake.pod_quota = 1
    driver = make_driver()
    driver.start_replica(spec(0))
    driver.start_replica(spec(1))
    wait_until(lambda: sorted(states(driver).values()) == ["failed", "starting"], 10, "one over quota")
    failed = next(s for s in driver.list_replicas() if s.state == "failed")
    assert "FailedCreate" in failed.message and "exceeded quota" in failed.message


def test_garbage_collection_removes_what_nothing_declares(
    fake: FakeApiServer, make_driver: MakeDriver
) -> None:
    driver = make_driver()
    driver.start_replica(spec(0))
    fake.put(_foreign_deployment(ids=[]))  # an empty group left by a crashed control plane
    fake.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "gone",
                "namespace": "ml",
                "labels": {
                    "app.kubernetes.io/managed-by": "polycloud",
                    "polycloud.dev/cluster": "eks-use1",
                    "polycloud.dev/service": "gone",
                },
            },
            "spec": {},
        }
    )
    fake.put(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "theirs", "namespace": "ml"}, "spec": {}}
    )
    driver.list_replicas()
    assert fake.names("Deployment") == [GROUP_V1]
    assert fake.names("Service") == ["fraud", "theirs"]  # not ours: never touched
    assert fake.names("Secret") == ["polycloud-fraud-token"]
    driver.stop_replica("fraud-eks-use1-0")
    driver.list_replicas()
    assert fake.names("Service") == ["theirs"] and fake.names("Secret") == []


def test_unreachable_api_is_transient(
    specs: MemorySpecs, make_driver: MakeDriver, fake: FakeApiServer
) -> None:
    driver = make_driver()
    driver.list_replicas()
    driver.start_replica(spec(0))
    fake.stop()
    with pytest.raises(TransientError, match="unreachable"):
        driver.start_replica(spec(1))
    driver.stop_replica("fraud-eks-use1-0")  # quiet: the id stays listed and is stopped next pass
    with pytest.raises(TransientError, match=r"cannot observe replicas.*unreachable"):
        wait_until(lambda: driver.list_replicas() and None, 10, "the informers to notice")


def test_rbac_refusal_and_missing_namespace_are_permanent(
    fake: FakeApiServer, specs: MemorySpecs, make_driver: MakeDriver
) -> None:
    driver = make_driver()
    driver.list_replicas()
    fake.namespaces.discard("ml")
    with pytest.raises(PermanentError, match='404 NotFound: namespaces "ml" not found'):
        driver.start_replica(spec(0))
    fake.forbidden = True
    with pytest.raises(PermanentError, match=r"403 Forbidden.*cannot list.*RBAC"):
        driver.start_replica(spec(0))


def test_unknown_revision_and_missing_image_are_permanent(
    specs: MemorySpecs, make_driver: MakeDriver
) -> None:
    driver = make_driver()
    with pytest.raises(PermanentError, match="no revision r7 of service fraud"):
        driver.start_replica(spec(0, revision=7))
    specs.add_cluster("bare", {"type": "kubernetes", "namespace": "ml"})
    with pytest.raises(PermanentError, match=r"driver.image is required"):
        make_driver("bare")
    specs.add_cluster("lost", {"type": "kubernetes", "kubeconfig": "/nonexistent/kubeconfig", "image": "x"})
    with pytest.raises(PermanentError, match=r"kubeconfig /nonexistent/kubeconfig, context \(current\)"):
        make_driver("lost")


def test_the_registry_builds_it_from_the_declared_cluster(specs: MemorySpecs, tmp_path: object) -> None:
    driver = create_driver("kubernetes", "eks-use1", tmp_path, specs)  # type: ignore[arg-type]
    try:
        assert isinstance(driver, KubernetesDriver)
        assert driver.target.namespace == "ml"
        assert isinstance(driver.list_replicas(), list)
    finally:
        driver.close()
    with pytest.raises(PermanentError, match="needs the declared specs"):
        create_driver("kubernetes", "eks-use1", tmp_path)  # type: ignore[arg-type]


def _foreign_deployment(ids: list[str] | None = None) -> dict[str, object]:
    labels = {
        "app.kubernetes.io/managed-by": "polycloud",
        "polycloud.dev/cluster": "eks-use1",
        "polycloud.dev/service": "other",
        "polycloud.dev/spec-hash": "1111111111",
        "polycloud.dev/revision": "3",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "other-1111111111",
            "namespace": "ml",
            "labels": labels,
            "annotations": {REPLICAS_ANNOTATION: json.dumps(["other-0"] if ids is None else ids)},
        },
        "spec": {
            "replicas": 1 if ids is None else len(ids),
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "s", "image": "x"}]},
            },
        },
    }
