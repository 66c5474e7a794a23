"""Lineage events from the store's state, valid OpenLineage, kept once, and delivered to a real HTTP
collector through the outbox: in order, none lost while the collector is down or across a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.controller.collector import Collector
from tests.controller.lineage_fleet import LineageFleet
from tests.controller.lineage_schema import conforms

from polycloud.catalog import Catalog, load_catalog
from polycloud.controller import lineage_events as ol
from polycloud.controller.lineage import LineageRecorder
from polycloud.state import Store


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def fleet(tmp_path: Path, catalog: Catalog) -> Iterator[LineageFleet]:
    found = LineageFleet(tmp_path, catalog)
    yield found
    found.store.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector().start()
    yield found
    found.stop()


def recorder(store: Store, catalog: Catalog, url: str | None = None) -> LineageRecorder:
    return LineageRecorder(store, catalog, url=url, interval_s=0.05)


def kinds(store: Store) -> list[tuple[str, str]]:
    return [(e.job_name, e.event_type) for e in store.lineage_events()]


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_job_attempt_reads_the_dataset_and_writes_the_model_by_digest(
    fleet: LineageFleet, catalog: Catalog
) -> None:
    lineage = recorder(fleet.store, catalog)
    fleet.start_attempt()
    assert lineage.record() == 1
    fleet.end_attempt()
    assert lineage.record() == 1 and lineage.record() == 0  # a state seen twice is recorded once
    start, complete = (e.payload for e in fleet.store.lineage_events())
    for payload in (start, complete):
        conforms(payload)
    assert start["run"]["runId"] == complete["run"]["runId"] == ol.job_attempt_id("train", 1, 1)
    parent = complete["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == ol.job_revision_id("train", 1) and parent["job"]["name"] == "train"
    (read,) = complete["inputs"]
    assert (read["namespace"], read["name"]) == ("polycloud://eu", "records")
    assert len(read["facets"]["version"]["datasetVersion"]) == 16
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(fleet.model.resolve()))
    assert output["facets"]["version"]["datasetVersion"] == fleet.digest
    assert output["facets"]["polycloud_artifact"]["sha256"] == fleet.digest
    assert "version" not in start["outputs"][0]["facets"]  # not written yet when it started
    facts = complete["run"]["facets"]["polycloud_run"]
    assert (facts["cluster"], facts["jurisdiction"], facts["hourlyUSD"]) == ("eu", "EU", 0.12)
    assert facts["computeUSD"] >= 0


@pytest.mark.parametrize(("state", "expected"), [("failed", "FAIL"), ("preempted", "ABORT")])
def test_an_attempt_that_does_not_succeed_fails_or_aborts(
    fleet: LineageFleet, catalog: Catalog, state: str, expected: str
) -> None:
    fleet.start_attempt()
    fleet.end_attempt(state=state, message="exit 3")
    recorder(fleet.store, catalog).record()
    start, end = fleet.store.lineage_events()
    assert (start.event_type, end.event_type) == ("START", expected)
    conforms(end.payload)
    assert "version" not in end.payload["outputs"][0]["facets"]  # only a success vouches for the file
    if expected == "FAIL":
        assert end.payload["run"]["facets"]["errorMessage"]["message"] == "exit 3"


def test_a_service_revision_starts_completes_or_aborts_per_cluster(
    fleet: LineageFleet, catalog: Catalog
) -> None:
    lineage = recorder(fleet.store, catalog)
    fleet.replicas((1, "starting"))
    lineage.record()
    fleet.replicas((1, "ready"), (2, "starting"))
    lineage.record()
    fleet.replicas((1, "ready"))  # r2 rolled back before one of its replicas was ready
    lineage.record()
    fleet.replicas((1, "ready"), (2, "ready"))  # a later replica of an ended rollout starts nothing
    lineage.record()
    assert kinds(fleet.store) == [
        ("scorer", "START"),
        ("scorer", "COMPLETE"),
        ("scorer", "START"),
        ("scorer", "ABORT"),
    ]
    events = fleet.store.lineage_events()
    for event in events:
        conforms(event.payload)
    complete = events[1].payload
    assert complete["run"]["runId"] == ol.rollout_id("scorer", 1, "us")
    (model,) = complete["inputs"]
    assert model["facets"]["polycloud_artifact"]["sha256"] == fleet.digest  # the digest apply pinned
    facts = complete["run"]["facets"]["polycloud_run"]
    assert (facts["provider"], facts["region"], facts["jurisdiction"]) == ("aws", "us-east-1", "US")


def test_the_outbox_delivers_every_event_once_across_an_outage_and_a_restart(
    fleet: LineageFleet, catalog: Catalog, collector: Collector
) -> None:
    collector.stop()  # down: connections refused
    lineage = recorder(fleet.store, catalog, collector.url)
    fleet.start_attempt()
    fleet.replicas((1, "starting"))
    lineage.step()
    assert collector.received() == []
    (first, *_) = fleet.store.lineage_events()
    assert first.sent_at is None and first.tries == 1 and "ConnectError" in first.last_error

    collector.start()  # up again, on the same port
    fleet.end_attempt()
    fleet.replicas((1, "ready"))
    lineage.record()
    outbox = lineage.outbox
    assert outbox is not None
    eventually(lambda: outbox.deliver() >= 0 and not fleet.store.unsent_lineage_events(), "delivery")
    lineage.stop()

    restarted = Store.open(fleet.url)  # a control plane restarted on the same database
    try:
        again = recorder(restarted, catalog, collector.url)
        again.step()
        again.stop()
        kept = [e.payload for e in restarted.lineage_events()]
    finally:
        restarted.close()
    received = collector.received()
    assert received == kept  # all of them, once each, in the order they were recorded
    assert [(e["job"]["name"], e["eventType"]) for e in received] == [
        ("train", "START"),
        ("scorer", "START"),
        ("train", "COMPLETE"),
        ("scorer", "COMPLETE"),
    ]
    for event in received:
        conforms(event)


def test_a_collector_error_is_retried_and_nothing_is_marked_sent(
    fleet: LineageFleet, catalog: Catalog, collector: Collector
) -> None:
    lineage = recorder(fleet.store, catalog, collector.url.replace("/api/v1/lineage", "/wrong"))
    fleet.start_attempt()
    lineage.step()
    (event,) = fleet.store.lineage_events()
    assert event.sent_at is None and event.last_error.startswith("HTTP 404")
    assert lineage.outbox is not None and lineage.outbox.backoff_s() == pytest.approx(0.05)
