"""A lineage history written straight into a store, as the recorder would have kept it: cheaper than
training and rolling out for tests that only read lineage (the API's listing, the dashboard's graph).

The story: a dataset on an EU site; a training job whose first attempt fails and whose second writes a
model; the service serving that model rolled out to a US and an EU cluster (revision 2) and a rollout of
revision 3 that was aborted; and a second revision of the job, still running, reading the dataset from
the US (so its read edge costs egress).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from polycloud.controller import lineage_events as ol
from polycloud.state import Store
from polycloud.state.lineage import LineageEventInput

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DIGEST = "5f1c2a9e" + "0" * 56
MODEL_PATH = "/srv/models/iris-v2.onnx"
SITES = {  # cluster: where it is
    "fra-onprem": {"cluster": "fra-onprem", "provider": "onprem", "region": "fra1", "jurisdiction": "EU"},
    "aws-use1": {"cluster": "aws-use1", "provider": "aws", "region": "us-east-1", "jurisdiction": "US"},
    "gcp-euw4": {"cluster": "gcp-euw4", "provider": "gcp", "region": "europe-west4", "jurisdiction": "EU"},
}


@dataclass(frozen=True)
class Story:
    dataset: str
    job: str
    service: str
    digest: str = DIGEST
    egress_usd: float = 0.23
    compute_usd: float = 0.0125


def seed(
    store: Store, dataset: str = "iris-measurements", job: str = "train-iris", service: str = "iris"
) -> Story:
    """Write the story's events into `store`; what it named."""
    story = Story(dataset, job, service)
    events = [
        *_attempt(story, 1, 1, "fra-onprem", "FAIL", compute=0.0031),
        *_attempt(story, 1, 2, "fra-onprem", "COMPLETE", compute=story.compute_usd),
        *_rollout(story, 2, "aws-use1", "COMPLETE", minutes=40),
        *_rollout(story, 2, "gcp-euw4", "COMPLETE", minutes=41),
        *_rollout(story, 3, "aws-use1", "ABORT", minutes=90),
        *_attempt(story, 2, 1, "aws-use1", None, egress=story.egress_usd),
    ]
    store.add_lineage_events(events)
    return story


def _read(story: Story, cluster: str, egress: float) -> dict[str, Any]:
    info = {"cluster": "fra-onprem", "residency": None, "sizeGB": 2.5}
    read = {"cluster": cluster, "egressUSD": egress}
    return ol.dataset(
        "polycloud://fra-onprem", story.dataset, "v1", polycloud_dataset=info, polycloud_read=read
    )


def _attempt(
    story: Story,
    revision: int,
    attempt: int,
    cluster: str,
    end: ol.EventType | None,
    compute: float = 0.0,
    egress: float = 0.0,
) -> list[LineageEventInput]:
    facts: dict[str, Any] = {"kind": "job", "workload": story.job, "revision": revision, "attempt": attempt}
    facts |= {**SITES[cluster], "hourlyUSD": 0.12, "nodes": 1}
    rid = ol.job_attempt_id(story.job, revision, attempt)
    subject = ol.RunSubject(rid, story.job, ol.job_revision_id(story.job, revision), facts)
    subject.inputs.append(_read(story, cluster, egress))
    began = START + timedelta(days=revision - 1, minutes=10 * (attempt - 1))
    events = [_event(subject, "START", began)]
    if end is not None:
        facts["computeUSD"] = compute
        sha = DIGEST if end == "COMPLETE" else None
        subject.outputs.append(ol.model_dataset(MODEL_PATH, None, sha, output="model"))
        events.append(_event(subject, end, began + timedelta(minutes=6), "out of memory"))
    return events


def _rollout(
    story: Story, revision: int, cluster: str, end: ol.EventType, minutes: int
) -> list[LineageEventInput]:
    facts = {"kind": "service", "workload": story.service, "revision": revision, **SITES[cluster]}
    rid = ol.rollout_id(story.service, revision, cluster)
    subject = ol.RunSubject(rid, story.service, ol.service_revision_id(story.service, revision), facts)
    subject.inputs.append(ol.model_dataset(MODEL_PATH, None, DIGEST))
    began = START + timedelta(minutes=minutes)
    return [_event(subject, "START", began), _event(subject, end, began + timedelta(seconds=30))]


def _event(subject: ol.RunSubject, kind: ol.EventType, at: datetime, message: str = "") -> LineageEventInput:
    payload = ol.run_event(subject, kind, at, message)
    return LineageEventInput(subject.run_id, kind, at, subject.job_name, payload)
