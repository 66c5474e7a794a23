"""`LineageRecorder`: turns what the store knows of runs into OpenLineage RunEvents, kept once each.

Each pass reads job attempts and the observed replicas and records the events their states imply: a job
attempt's START when it started and COMPLETE, FAIL or ABORT when it ended (its outputs then carry their
sha256); a service revision's START on a cluster when a replica of it appears there, COMPLETE once one is
ready, ABORT when they are all gone before that (rolled back or replaced). Events are derived from
state rather than emitted where the state changes, so none is missed while the recorder is down or
the lease moves: the next pass records what happened, with the times the store kept. The store keeps
one event per (run, type), so a state seen twice is recorded once. Then the outbox delivers them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polycloud.catalog import Catalog
from polycloud.controller import lineage_events as ol
from polycloud.controller.lineage_outbox import Outbox
from polycloud.errors import NotFoundError
from polycloud.loops import Gate, Loop, always
from polycloud.placement.sites import Site, build_site
from polycloud.spec.models import Cluster
from polycloud.state.job_records import AttemptRecord, JobRunRecord
from polycloud.state.lineage import LineageEventInput
from polycloud.state.repositories_runtime import LineageRecorderStore, LineageStore

log = logging.getLogger(__name__)

ATTEMPT_ENDS: dict[str, ol.EventType] = {
    "succeeded": "COMPLETE",
    "failed": "FAIL",
    "preempted": "ABORT",
    "cancelled": "ABORT",
    "stopped": "ABORT",
}
"""How an attempt's end reads in OpenLineage (a preempted attempt is aborted: the next one resumes)."""
Known = set[tuple[str, str]]


def file_sha256(path: str) -> str | None:
    """The sha256 of a file, None when it cannot be read (not written, or on another machine)."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


class World:
    """What one pass knows of the fleet: sites, datasets and workload revisions (read once each)."""

    def __init__(self, store: LineageRecorderStore, catalog: Catalog) -> None:
        self.store = store
        self.sites: dict[str, Site] = {}
        for doc in store.documents("Cluster"):
            try:
                self.sites[doc.name] = build_site(Cluster.model_validate(doc.spec), catalog)
            except ValueError:  # a document an older polycloud stored: no site facts for it
                continue
        self.datasets = {d.name: (d.spec, d.content_hash[:16]) for d in store.documents("Dataset")}
        self._revisions: dict[tuple[str, int], dict[str, Any]] = {}

    def spec(self, workload: str, revision: int) -> dict[str, Any]:
        """The `spec` of a workload revision ({} when it is gone)."""
        key = (workload, revision)
        if key not in self._revisions:
            try:
                self._revisions[key] = self.store.revision(workload, revision).spec.get("spec", {})
            except NotFoundError:
                self._revisions[key] = {}
        return self._revisions[key]

    def place(self, cluster: str) -> dict[str, Any]:
        """Where a cluster is, for the run facet and `polycloud lineage`."""
        site = self.sites.get(cluster)
        if site is None:
            return {"cluster": cluster}
        return {
            "cluster": cluster,
            "provider": site.provider,
            "region": site.region,
            "jurisdiction": site.jurisdiction,
        }

    def read_egress_usd(self, dataset: str, cluster: str) -> float:
        """What moving the dataset whole to `cluster` costs, at its site's transfer price (0 in place)."""
        spec, _ = self.datasets.get(dataset, ({}, ""))
        source_name = spec.get("spec", {}).get("cluster")
        source, target = self.sites.get(source_name or ""), self.sites.get(cluster)
        if source is None or target is None or source.name == target.name:
            return 0.0
        same = source.provider == target.provider
        price = source.inter_region_usd_per_gb if same else source.internet_egress_usd_per_gb
        return float(spec.get("spec", {}).get("sizeGB", 0.0)) * price

    def inputs(self, spec: dict[str, Any], cluster: str) -> list[dict[str, Any]]:
        """The Datasets a workload reads, each with what reading it on `cluster` moved."""
        found = []
        for read in spec.get("reads", []):
            name = read["dataset"]
            document, version = self.datasets.get(name, (None, None))
            item = ol.declared_dataset(name, document, version)
            egress = round(self.read_egress_usd(name, cluster), 6)
            item["facets"]["polycloud_read"] = ol.facet(cluster=cluster, egressUSD=egress)
            found.append(item)
        return found


class LineageRecorder:
    """Records lineage events from the store's state, and delivers them, on a leader-gated loop."""

    def __init__(
        self,
        store: LineageStore,
        catalog: Catalog,
        *,
        url: str | None,
        interval_s: float = 2.0,
        gate: Gate = always,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.outbox = Outbox(store, url, interval_s=interval_s) if url else None
        self.loop = Loop("lineage", self.step, interval_s=interval_s, gate=gate)

    def start(self) -> LineageRecorder:
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()
        if self.outbox is not None:
            self.outbox.close()

    def step(self) -> None:
        """One pass: record, then deliver."""
        self.record()
        if self.outbox is not None:
            self.outbox.deliver()

    def record(self) -> int:
        """Record the events the store's state implies that are not kept yet; returns how many."""
        known = self.store.lineage_keys()
        world = World(self.store, self.catalog)
        events = [*self._jobs(known, world), *self._rollouts(known, world)]
        return self.store.add_lineage_events(events)

    # -- jobs --------------------------------------------------------------------------------
    def _jobs(self, known: Known, world: World) -> Iterator[LineageEventInput]:
        for run in self.store.job_runs():
            for attempt in run.attempts:
                yield from self._attempt(run, attempt, known, world)

    def _attempt(
        self, run: JobRunRecord, attempt: AttemptRecord, known: Known, world: World
    ) -> Iterator[LineageEventInput]:
        rid = ol.job_attempt_id(run.job, run.revision, attempt.number)
        end = ATTEMPT_ENDS.get(attempt.state) if attempt.ended_at is not None else None
        start_new = (rid, "START") not in known
        end_new = end is not None and (rid, end) not in known
        if not (start_new or end_new):
            return
        spec = world.spec(run.job, run.revision)
        facts = {
            "kind": "job",
            "workload": run.job,
            "revision": run.revision,
            "attempt": attempt.number,
            **world.place(attempt.cluster),
            "hourlyUSD": attempt.hourly_usd,
            "nodes": attempt.nodes,
        }
        subject = ol.RunSubject(rid, run.job, ol.job_revision_id(run.job, run.revision), facts)
        subject.inputs.extend(world.inputs(spec, attempt.cluster))
        if start_new:
            subject.outputs.extend(_outputs(spec, digest=False))
            yield _event(subject, "START", attempt.started_at)
        if end is not None and end_new and attempt.ended_at is not None:
            facts["computeUSD"] = round(attempt.cost_usd(attempt.ended_at), 6)
            facts["checkpointEgressUSD"] = round(run.egress_usd, 6)
            subject.outputs.clear()
            subject.outputs.extend(_outputs(spec, digest=end == "COMPLETE"))
            yield _event(subject, end, attempt.ended_at, attempt.message)

    # -- service rollouts ---------------------------------------------------------------------
    def _rollouts(self, known: Known, world: World) -> Iterator[LineageEventInput]:
        now = datetime.now(UTC)
        services = {w.name for w in self.store.current() if w.kind == "Service"}
        present: dict[tuple[str, int, str], bool] = {}
        for replica in self.store.replicas():
            if replica.workload in services:
                key = (replica.workload, replica.revision, replica.cluster)
                present[key] = present.get(key, False) or replica.state == "ready"
        for (service, revision, cluster), ready in present.items():
            rid = ol.rollout_id(service, revision, cluster)
            if (rid, "START") in known and (not ready or (rid, "COMPLETE") in known):
                continue
            if any((rid, t) in known for t in ("ABORT", "FAIL")):
                continue  # ended once: a later replica of it is not a new rollout
            subject = self._rollout(service, revision, cluster, world)
            if (rid, "START") not in known:
                yield _event(subject, "START", now)
            if ready:
                yield _event(subject, "COMPLETE", now)
        for started in self.store.open_lineage_runs("service"):
            facts = started.payload["run"]["facets"]["polycloud_run"]
            key = (facts["workload"], int(facts["revision"]), facts["cluster"])
            if key not in present:
                subject = self._rollout(*key, world)
                yield _event(subject, "ABORT", now, "its replicas were removed before one was ready")

    def _rollout(self, service: str, revision: int, cluster: str, world: World) -> ol.RunSubject:
        spec = world.spec(service, revision)
        facts = {"kind": "service", "workload": service, "revision": revision, **world.place(cluster)}
        parent = ol.service_revision_id(service, revision)
        subject = ol.RunSubject(ol.rollout_id(service, revision, cluster), service, parent, facts)
        model = spec.get("model") or {}
        if model:
            subject.inputs.append(ol.model_dataset(model.get("path"), model.get("uri"), model.get("sha256")))
        subject.inputs.extend(world.inputs(spec, cluster))
        return subject


def _outputs(spec: dict[str, Any], *, digest: bool) -> list[dict[str, Any]]:
    """A job's declared outputs; with `digest`, each with the sha256 of the file it wrote."""
    return [
        ol.model_dataset(o["path"], None, file_sha256(o["path"]) if digest else None, output=o["name"])
        for o in spec.get("outputs", [])
    ]


def _event(
    subject: ol.RunSubject, event_type: ol.EventType, at: datetime, message: str = ""
) -> LineageEventInput:
    payload = ol.run_event(subject, event_type, at, message)
    return LineageEventInput(subject.run_id, event_type, at, subject.job_name, payload)
