"""OpenLineage RunEvents of polycloud's runs, as plain JSON (docs/lineage.md).

Two kinds of run: a job *attempt* (one process start of a Job revision; its parent run is the revision's
run) and a service *rollout to a cluster* (a Service revision on one cluster; its parent run is the
revision's). Run ids are UUIDs derived from what the run is (uuid5), so they are the same after any
restart of the control plane and a recorder that sees a state twice builds the same event.

Datasets: a Dataset document is `polycloud://<cluster>` / `<name>`, versioned by its content hash; a
model file is `file` / `<absolute path>` and a model by URI `<scheme>` / `<uri>`, both versioned by
their sha256, which the `polycloud_artifact` facet also carries, so a job's output and a service's input
meet on the digest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

EventType = Literal["START", "COMPLETE", "FAIL", "ABORT"]
TERMINAL: frozenset[str] = frozenset({"COMPLETE", "FAIL", "ABORT"})
NAMESPACE = "polycloud"
"""The OpenLineage namespace of polycloud's jobs."""
PRODUCER = "https://github.com/polycloud/polycloud"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PARENT_SCHEMA = "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
VERSION_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
CUSTOM_SCHEMA = "https://github.com/polycloud/polycloud/blob/main/docs/lineage.md#facets"
_IDS = uuid.UUID("6f1d7c4e-3b0a-5d2e-9c41-7a9e0f2b8d13")
"""The uuid5 namespace of polycloud's run ids (any fixed UUID; never change it)."""


def run_id(*parts: str | int) -> str:
    """The stable run id of what `parts` name, e.g. `("job", "train-iris", 1, 2)`."""
    return str(uuid.uuid5(_IDS, "/".join(str(p) for p in parts)))


def job_attempt_id(job: str, revision: int, attempt: int) -> str:
    return run_id("job", job, revision, attempt)


def job_revision_id(job: str, revision: int) -> str:
    return run_id("job", job, revision)


def rollout_id(service: str, revision: int, cluster: str) -> str:
    return run_id("service", service, revision, cluster)


def service_revision_id(service: str, revision: int) -> str:
    return run_id("service", service, revision)


def facet(schema: str = CUSTOM_SCHEMA, **fields: Any) -> dict[str, Any]:
    """A facet: its fields (but those without a value) with the producer and schema every facet carries."""
    return {"_producer": PRODUCER, "_schemaURL": schema, **{k: v for k, v in fields.items() if v is not None}}


def dataset(namespace: str, name: str, version: str | None, **custom: dict[str, Any]) -> dict[str, Any]:
    """A Dataset with a version facet (when known) and custom facets (`polycloud_*`)."""
    facets: dict[str, Any] = {k: facet(**v) for k, v in custom.items()}
    if version is not None:
        facets["version"] = facet(VERSION_SCHEMA, datasetVersion=version)
    return {"namespace": namespace, "name": name, "facets": facets}


def declared_dataset(name: str, document: dict[str, Any] | None, version: str | None) -> dict[str, Any]:
    """A Dataset document as an input: namespace from its cluster, version from its content hash."""
    spec = (document or {}).get("spec", {})
    cluster = spec.get("cluster", "unknown")
    info = {"cluster": cluster, "residency": spec.get("residency"), "sizeGB": spec.get("sizeGB")}
    return dataset(f"polycloud://{cluster}", name, version, polycloud_dataset=info)


def model_dataset(
    path: str | None, uri: str | None, sha256: str | None, output: str | None = None
) -> dict[str, Any]:
    """A model file or URI, versioned by its sha256 (None: not known, e.g. the file is missing)."""
    if uri is not None:
        namespace, name = uri.partition(":")[0] or "uri", uri
    else:
        namespace, name = "file", path or "unknown"
    info: dict[str, Any] = {"sha256": sha256, "path": path, "uri": uri}
    if output is not None:
        info["output"] = output
    return dataset(namespace, name, sha256, polycloud_artifact=info)


@dataclass(frozen=True)
class RunSubject:
    """What a run is: the job it belongs to and its parent run."""

    run_id: str
    job_name: str
    parent_run_id: str
    facts: dict[str, Any]
    """The `polycloud_run` facet: kind, workload, revision, cluster, region, jurisdiction, costs."""
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


def run_event(subject: RunSubject, event_type: EventType, at: datetime, message: str = "") -> dict[str, Any]:
    """The RunEvent of `subject` moving to `event_type` at `at`."""
    run_facets: dict[str, Any] = {
        "parent": facet(
            PARENT_SCHEMA,
            run={"runId": subject.parent_run_id, "facets": {}},
            job={"namespace": NAMESPACE, "name": subject.job_name, "facets": {}},
        ),
        "polycloud_run": facet(**subject.facts),
    }
    if event_type == "FAIL" and message:
        run_facets["errorMessage"] = facet(
            "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
            message=message,
            programmingLanguage="unknown",
        )
    return {
        "eventType": event_type,
        "eventTime": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "run": {"runId": subject.run_id, "facets": run_facets},
        "job": {"namespace": NAMESPACE, "name": subject.job_name, "facets": {}},
        "inputs": [{**i, "inputFacets": {}} for i in subject.inputs],
        "outputs": [{**o, "outputFacets": {}} for o in subject.outputs],
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
    }
