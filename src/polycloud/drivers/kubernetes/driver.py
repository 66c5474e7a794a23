"""`KubernetesDriver`: a cluster whose replicas are pods of Deployments on a real Kubernetes cluster.

Mapping (docs/kubernetes.md): a replica group — (service, cluster, spec hash) — is one Deployment
whose `replicas` is the number of replica ids the controller started in it (the ids live in an
annotation, so any control plane can read them back after a crash); each service has one Service
object in front of its pods. Starting a replica adds its id and scales up; stopping removes it and
scales down (deleting the Deployment at zero). Rolling updates stay the controller's: a new spec hash
is a new Deployment, grown one replica at a time while the old one shrinks.

Reads come from informers (list + watch), writes are server-side applies as field manager
"polycloud", conditional on the resourceVersion read, so two writers never lose an update (409).

With the fleet's mutual TLS, each service's pods mount a TLS Secret the driver issues and renews
(`certifying`), serve `https://` and are probed on a plain-HTTP health port (`manifests`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from polycloud.drivers.base import DeclaredSpecs, ReplicaSpec, ReplicaStatus
from polycloud.drivers.kubernetes import manifests as m
from polycloud.drivers.kubernetes.api import KubeApi, connect
from polycloud.drivers.kubernetes.certifying import RENEW_INTERVAL_S, ReplicaCertificates
from polycloud.drivers.kubernetes.collecting import collect_garbage
from polycloud.drivers.kubernetes.identity import ReplicaTokens
from polycloud.drivers.kubernetes.informer import Informer
from polycloud.drivers.kubernetes.status import belongs, group_statuses
from polycloud.errors import PermanentError, TransientError
from polycloud.pki.contexts import FleetTls
from polycloud.pki.workload import WorkloadTokens

FIRST_SYNC_S = 5.0
"""How long the first listing may wait for the informers' first list."""
GC_INTERVAL_S = 30.0

_log = logging.getLogger(__name__)


def target_of(cluster: str, declared: DeclaredSpecs) -> tuple[m.Target, str | None, str | None]:
    """The cluster's target (namespace, image) and its kubeconfig file and context.

    Raises:
        PermanentError: The cluster is not declared, not a kubernetes cluster, or has no image.
    """
    doc = declared.cluster(cluster)
    if doc is None or doc.spec.driver.type != "kubernetes":
        raise PermanentError(f"cluster {cluster}: not declared as a kubernetes cluster")
    driver = doc.spec.driver
    if not driver.image:
        raise PermanentError(f"cluster {cluster}: driver.image is required for kubernetes (the model server)")
    target = m.Target(cluster=cluster, namespace=driver.namespace or "default", image=driver.image)
    return target, driver.kubeconfig, driver.context


class KubernetesDriver:
    """Runs one cluster's replicas on Kubernetes. Implements `ClusterDriver`; thread-safe."""

    def __init__(
        self,
        target: m.Target,
        api: KubeApi,
        declared: DeclaredSpecs,
        *,
        watch_timeout_s: int = 60,
        gc_interval_s: float = GC_INTERVAL_S,
        retry_s: float = 1.0,
        tls: FleetTls | None = None,
        renew_interval_s: float = RENEW_INTERVAL_S,
        identity: WorkloadTokens | None = None,
    ) -> None:
        """Start watching the cluster's objects; creates nothing.

        Args:
            target: Cluster name, namespace and model-server image.
            api: The namespace's API.
            declared: Service revisions (resources, secret env names) by name and number.
            watch_timeout_s: How long each watch stream lasts before it is renewed.
            gc_interval_s: Least time between garbage collections of undeclared objects.
            retry_s: Pause before relisting after an error.
            tls: The fleet's mutual TLS: replicas then get certificates as Secrets (renewed past half
                their life), serve `https://` and accept only fleet clients; None: plain HTTP.
            renew_interval_s: Least time between renewal passes over the TLS and identity Secrets.
            identity: The workload issuer: each service's pods then mount an identity token Secret
                (renewed past half its life); None: no tokens.
        """
        self.cluster = target.cluster
        self.target = target
        self._api = api
        self._https = tls is not None
        self._certificates = (
            ReplicaCertificates(tls, api, target, interval_s=renew_interval_s) if tls is not None else None
        )
        self._tokens = (
            ReplicaTokens(identity, api, target, interval_s=renew_interval_s)
            if identity is not None
            else None
        )
        self._declared = declared
        self._gc_interval_s = gc_interval_s
        self._last_gc = float("-inf")
        self._first_listing = True
        self._lock = threading.Lock()  # serialises writes: read-modify-write of a group's ids
        selector = m.owner_selector(target.cluster)
        opts: dict[str, Any] = {"watch_timeout_s": watch_timeout_s, "retry_s": retry_s}
        self.deployments = Informer(api, "Deployment", selector, **opts)
        self.pods = Informer(api, "Pod", selector, **opts)
        self.deployments.start()
        self.pods.start()

    @classmethod
    def connect(
        cls,
        cluster: str,
        declared: DeclaredSpecs,
        *,
        watch_timeout_s: int = 60,
        gc_interval_s: float = GC_INTERVAL_S,
        retry_s: float = 1.0,
        tls: FleetTls | None = None,
        renew_interval_s: float = RENEW_INTERVAL_S,
        identity: WorkloadTokens | None = None,
    ) -> KubernetesDriver:
        """A driver for a declared kubernetes Cluster, through its kubeconfig context (see `__init__`)."""
        target, kubeconfig, context = target_of(cluster, declared)
        where = f"cluster {cluster} (context {context or 'current'}, namespace {target.namespace})"
        api = KubeApi(connect(kubeconfig, context), target.namespace, where=where)
        return cls(
            target,
            api,
            declared,
            watch_timeout_s=watch_timeout_s,
            gc_interval_s=gc_interval_s,
            retry_s=retry_s,
            tls=tls,
            renew_interval_s=renew_interval_s,
            identity=identity,
        )

    # ----------------------------------------------------------------------------------- listing

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every replica id recorded on the cluster's Deployments, with its pods' state.

        Raises:
            TransientError: The informers have not listed the cluster yet (it is unreachable).
        """
        if self._first_listing:  # give the informers a moment to list once; later, never block
            self._first_listing = False
            self.deployments.wait_synced(FIRST_SYNC_S)
            self.pods.wait_synced(FIRST_SYNC_S)
        deployments, pods = self.deployments.snapshot(), self.pods.snapshot()
        if deployments is None or pods is None:
            why = self.deployments.error or self.pods.error or "not listed yet"
            raise TransientError(f"cluster {self.cluster}: cannot observe replicas: {why}")
        self._maybe_collect()
        self._maybe_renew(deployments)
        statuses: list[ReplicaStatus] = []
        for dep in deployments:
            service = _service_of(dep)
            own = [p for p in pods if belongs(p, dep)]
            statuses += group_statuses(self.cluster, dep, own, self._endpoint(service))
        return statuses

    def _endpoint(self, service: str) -> str:
        return m.service_url(self.target, service, tls=self._https)

    def _maybe_renew(self, deployments: list[m.Manifest]) -> None:
        """Renew the TLS and identity Secrets of services that still have replicas (never raises)."""
        live = [d for d in deployments if m.replica_ids(d)]
        with self._lock:  # after a garbage collection, never beside one
            if self._certificates is not None:
                self._certificates.renew(_service_of(d) for d in live)
            if self._tokens is not None:
                self._tokens.renew((_service_of(d), _revision_of(d)) for d in live)

    def _maybe_collect(self) -> None:
        if time.monotonic() - self._last_gc < self._gc_interval_s:
            return
        try:
            self.collect_garbage()
        except TransientError as e:  # garbage can wait; the listing itself is still good
            _log.warning("cluster %s: garbage collection postponed: %s", self.cluster, e)

    def collect_garbage(self) -> list[tuple[str, str]]:
        """Delete this cluster's objects that nothing declares any more (see `collecting`) now."""
        self._last_gc = time.monotonic()
        with self._lock:
            deleted = collect_garbage(self._api, self.cluster)
        for kind, name in deleted:
            if kind == "Deployment":
                self.deployments.forget(name)
        return deleted

    # ---------------------------------------------------------------------------------- changing

    def start_replica(self, spec: ReplicaSpec) -> ReplicaStatus:
        """Add `spec.id` to its group's Deployment (creating it, its Service and Secrets as needed;
        with TLS, the service's certificate Secret too when it is missing or due).

        Raises:
            PermanentError: Wrong cluster, no such service revision, a secret value missing, the fleet
                CA cannot issue, or the API refused the objects (RBAC, invalid, no namespace).
            TransientError: The API is unreachable, a quota is full, or the Deployment changed under us.
        """
        if spec.cluster != self.cluster:
            raise PermanentError(f"replica {spec.id} is for cluster {spec.cluster}, not {self.cluster}")
        serving = self._serving(spec)
        with self._lock:
            for var in serving.env:
                if var.secret is not None:
                    self._api.apply(m.secret(self.target, var.secret, self._secret_value(spec, var.name)))
            if self._certificates is not None:
                self._certificates.ensure(spec.service)
            if self._tokens is not None:
                self._tokens.ensure(spec.service, spec.revision)
            self._api.apply(m.service(self.target, spec.service, tls=self._https))
            name = m.deployment_name(spec.service, spec.spec_hash)
            current = self._api.get("Deployment", name)
            ids = m.replica_ids(current) if current is not None else []
            if spec.id not in ids:
                manifest = m.deployment(self.target, serving, [*ids, spec.id])
                if current is not None:  # conditional: a concurrent writer gets 409, not a lost id
                    manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self.deployments.observe(self._api.apply(manifest))
                _log.info("replica %s: %s scaled to %d", spec.id, name, len(ids) + 1)
        return ReplicaStatus(
            id=spec.id,
            service=spec.service,
            cluster=self.cluster,
            revision=spec.revision,
            role=spec.role,
            spec_hash=spec.spec_hash,
            state="starting",
            endpoint=self._endpoint(spec.service),
        )

    def _serving(self, spec: ReplicaSpec) -> m.Serving:
        service = self._declared.service(spec.service, spec.revision)
        if service is None:
            raise PermanentError(f"replica {spec.id}: no revision r{spec.revision} of service {spec.service}")
        model = service.spec.model
        if model is not None and spec.model_sha256 and model.sha256 != spec.model_sha256:
            model = model.model_copy(update={"sha256": spec.model_sha256})
        return m.Serving(
            service=spec.service,
            revision=spec.revision,
            role=spec.role,
            spec_hash=spec.spec_hash,
            model=model,
            resources=service.spec.resources,
            env=tuple(service.spec.env),
            tls=self._https,
            protocol=service.spec.protocol,
            runtime=service.spec.runtime,
            identity=self._tokens is not None,
        )

    @staticmethod
    def _secret_value(spec: ReplicaSpec, env_name: str) -> str:
        value = spec.env.get(env_name)
        if value is None:
            raise PermanentError(f"replica {spec.id}: the value of secret env {env_name} was not resolved")
        return value

    def stop_replica(self, replica_id: str, grace_s: float = 10.0) -> None:
        """Remove `replica_id` from its Deployment and scale it down (deleting it at zero).

        Pods get the template's termination grace period (`manifests.GRACE_S`), not `grace_s`: a
        Deployment cannot give one pod a grace of its own. Never raises because the replica is gone,
        nor when the API is unreachable: the id stays listed, so the next reconcile pass stops it again
        (raising would abort the whole pass, starts included).

        Raises:
            PermanentError: The API refuses the change (RBAC).
        """
        with self._lock:
            for dep in self.deployments.snapshot() or []:
                if replica_id in m.replica_ids(dep):
                    try:
                        self._remove(dep["metadata"]["name"], replica_id)
                    except TransientError as e:
                        _log.warning("stop %s: %s (retried next pass)", replica_id, e)

    def _remove(self, name: str, replica_id: str) -> None:
        current = self._api.get("Deployment", name)
        if current is None:
            self.deployments.forget(name)
            return
        ids = [i for i in m.replica_ids(current) if i != replica_id]
        if not ids:
            self._api.delete("Deployment", name)
            self.deployments.forget(name)
            return
        patch = {
            "metadata": {
                "resourceVersion": current["metadata"]["resourceVersion"],
                "annotations": {m.REPLICAS_ANNOTATION: json.dumps(sorted(ids))},
            },
            "spec": {"replicas": len(ids)},
        }
        self.deployments.observe(self._api.patch("Deployment", name, patch))

    def close(self) -> None:
        """Stop watching; everything on the cluster keeps running."""
        self.deployments.stop()
        self.pods.stop()
        self._api.close()


def _service_of(deployment: m.Manifest) -> str:
    return str((deployment.get("metadata", {}).get("labels") or {}).get(m.SERVICE_LABEL, ""))


def _revision_of(deployment: m.Manifest) -> int:
    label = (deployment.get("metadata", {}).get("labels") or {}).get(m.REVISION_LABEL, "0")
    return int(label) if str(label).isdigit() else 0
