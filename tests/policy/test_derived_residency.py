"""Residency that follows the data: a model a Job trains on EU data may be served only in the EU, unless
a Policy that selects the Service says `derivedResidency: ignore` (docs/lineage.md)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.support import EXAMPLE_MODEL

from polycloud.catalog import Catalog
from polycloud.controller.lineage import LineageRecorder
from polycloud.errors import UserError
from polycloud.placement import plan_fleet
from polycloud.policy import evaluate
from polycloud.policy.derived import inherited_residencies
from polycloud.services.applying import FleetService
from polycloud.services.documents import fleet_to_documents
from polycloud.services.lineage import trained_on
from polycloud.spec import Fleet, load_fleet
from polycloud.spec.fleet import TrainedOn
from polycloud.state import Store
from polycloud.state.job_records import AttemptInput

from .support import CLUSTERS, policy

TRAINED = """\
---
apiVersion: polycloud/v1
kind: Job
metadata: {name: train}
spec:
  hours: 1
  reads: [{dataset: records}]
  placement: {clusters: [eu]}
  outputs: [{name: model, path: models/scorer.onnx}]
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: scorer, labels: {team: web}}
spec:
  model: {path: models/scorer.onnx}
  resources: {vcpus: 2, memoryGiB: 4}
"""
US_ONLY = "  placement: {clusters: [us]}\n"


def fleet(tmp_path: Path, catalog: Catalog, *extra: str) -> Fleet:
    (tmp_path / "models").mkdir(exist_ok=True)
    shutil.copy(EXAMPLE_MODEL, tmp_path / "models" / "scorer.onnx")
    path = tmp_path / "fleet.yaml"
    path.write_text(CLUSTERS + TRAINED + "".join(extra))
    return load_fleet([path], catalog)


def chain(tmp_path: Path) -> str:
    model = (tmp_path / "models" / "scorer.onnx").resolve()
    return f"dataset records → job train → model {model}"


def test_a_model_trained_on_eu_data_is_served_in_the_eu(tmp_path: Path, catalog: Catalog) -> None:
    found = fleet(tmp_path, catalog)
    (inherited,) = inherited_residencies(found, found.services["scorer"], found.policies.values())
    assert (inherited.jurisdiction, inherited.chain) == ("EU", chain(tmp_path))
    plan = plan_fleet(found, catalog)
    placed = next(p for p in plan.placements if p.workload == "scorer")
    assert {a.cluster for a in placed.assignments} == {"eu"}  # us would be cheaper, but the data says EU


def test_serving_it_in_a_us_cluster_is_refused_with_the_lineage_chain(
    tmp_path: Path, catalog: Catalog
) -> None:
    found = fleet(tmp_path, catalog, US_ONLY)
    (infeasible,) = plan_fleet(found, catalog).infeasible
    reasons = " ".join(infeasible.reasons)
    assert f"but dataset records (lineage: {chain(tmp_path)}) must stay in EU" in reasons
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with pytest.raises(UserError, match="lineage: dataset records → job train → model"):
            FleetService(store, catalog).apply(
                fleet_to_documents(found), author="t", message="", dry_run=False
            )
        assert store.current() == []
    finally:
        store.close()


def test_derived_residency_ignore_allows_it(tmp_path: Path, catalog: Catalog) -> None:
    ignore = policy("selector: {matchLabels: {team: web}}\nderivedResidency: ignore")
    found = fleet(tmp_path, catalog, US_ONLY, ignore)
    assert inherited_residencies(found, found.services["scorer"], found.policies.values()) == []
    plan = plan_fleet(found, catalog)
    assert plan.infeasible == []
    placed = next(p for p in plan.placements if p.workload == "scorer")
    assert {a.cluster for a in placed.assignments} == {"us"}


def test_a_policy_that_does_not_select_the_service_changes_nothing(tmp_path: Path, catalog: Catalog) -> None:
    other = policy("selector: {matchLabels: {team: data}}\nderivedResidency: ignore")
    found = fleet(tmp_path, catalog, US_ONLY, other)
    assert [i.workload for i in plan_fleet(found, catalog).infeasible] == ["scorer"]


def test_a_plan_serving_it_outside_the_eu_is_a_policy_violation(tmp_path: Path, catalog: Catalog) -> None:
    cleared = fleet(tmp_path, catalog, US_ONLY, policy("derivedResidency: ignore", name="cleared"))
    plan = plan_fleet(cleared, catalog).placements  # placed in us while the policy clears it
    strict = fleet(tmp_path, catalog, US_ONLY, policy("requiredLabels: []", name="org"))
    (violation,) = evaluate(strict, catalog, plan=plan).violations
    assert (violation.policy, violation.rule, violation.document) == ("org", "derivedResidency", "scorer")
    assert f"must stay in EU ({chain(tmp_path)})" in violation.message


# -- the tie by digest: a copy of the model, or the same bytes by URI, keeps the data's residency --------

COPY = """\
---
apiVersion: polycloud/v1
kind: Service
metadata: {name: copy, labels: {team: web}}
spec:
  model: %s
  resources: {vcpus: 2, memoryGiB: 4}
  placement: {clusters: [us]}
"""


def trained_store(tmp_path: Path, catalog: Catalog) -> tuple[Store, FleetService]:
    """A store whose lineage records job `train` writing the model from EU-resident `records`."""
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    service = FleetService(
        store, catalog, trained_on=lambda: trained_on(store.lineage_events(event_type="COMPLETE"))
    )
    service.apply(fleet_to_documents(fleet(tmp_path, catalog)), author="t", message="", dry_run=False)
    run = store.job_run("train", 1, "eu").id
    store.add_job_attempt(run, AttemptInput(1, "eu", 4242, 0.12, 1, datetime.now(UTC)))
    store.end_job_attempt(run, 1, state="succeeded", run_state="succeeded", message="")
    LineageRecorder(store, catalog, url=None).record()
    return store, service


def copied(tmp_path: Path, catalog: Catalog, model: str, *extra: str) -> list[dict[str, Any]]:
    """A fleet without the job: only `copy`, serving `model`, in the US."""
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    shutil.copy(EXAMPLE_MODEL, tmp_path / "elsewhere" / "copy.onnx")
    path = tmp_path / "copied.yaml"
    path.write_text(CLUSTERS + COPY % model + "".join(extra))
    return fleet_to_documents(load_fleet([path], catalog))


def test_trained_on_reads_the_completed_runs_of_the_lineage(tmp_path: Path, catalog: Catalog) -> None:
    store, _ = trained_store(tmp_path, catalog)
    try:
        digest = hashlib.sha256(EXAMPLE_MODEL.read_bytes()).hexdigest()
        assert trained_on(store.lineage_events()) == {digest: (TrainedOn("train", "records", "EU"),)}
    finally:
        store.close()


def test_a_copy_of_the_model_keeps_its_residency_by_digest(tmp_path: Path, catalog: Catalog) -> None:
    store, service = trained_store(tmp_path, catalog)
    try:
        before = store.current()
        with pytest.raises(UserError, match=r"lineage: dataset records → job train → model sha256:\w{12}…"):
            service.apply(
                copied(tmp_path, catalog, "{path: elsewhere/copy.onnx}"),
                author="t",
                message="",
                dry_run=False,
            )
        assert store.current() == before  # nothing half-applied
        ignore = policy("selector: {matchLabels: {team: web}}\nderivedResidency: ignore")
        documents = copied(tmp_path, catalog, "{path: elsewhere/copy.onnx}", ignore)
        applied = service.apply(documents, author="t", message="", dry_run=False)
        assert applied.applied
    finally:
        store.close()


def test_the_same_bytes_by_uri_are_tied_by_their_declared_digest(tmp_path: Path, catalog: Catalog) -> None:
    store, service = trained_store(tmp_path, catalog)
    try:
        digest = hashlib.sha256(EXAMPLE_MODEL.read_bytes()).hexdigest()
        model = f'{{uri: "s3://models/scorer.onnx", sha256: "{digest}"}}'
        (infeasible,) = service.plan(copied(tmp_path, catalog, model)).infeasible
        assert "(lineage: dataset records → job train → model sha256:" in " ".join(infeasible.reasons)
        other = f'{{uri: "s3://models/other.onnx", sha256: "{"c" * 64}"}}'
        assert service.plan(copied(tmp_path, catalog, other)).infeasible == []
    finally:
        store.close()
