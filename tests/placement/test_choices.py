"""The array-built choices equal the per-pair reference bit for bit, and so do the plans made from them.

`reference_choices.py` is the cost model as it was written before (one object per workload × cluster ×
role); here both build every workload's problem on random fleets — the property tests' small ones and the
benchmark's generated ones — and every field must match exactly (floats by their bits, dicts in order),
then both plans must serialise to the same JSON bytes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from hypothesis import given

from polycloud.catalog import Catalog, load_catalog
from polycloud.placement import planning
from polycloud.placement.choices import ProblemBuilder
from polycloud.placement.sites import build_site
from polycloud.services.documents import documents_to_fleet
from polycloud.spec import Fleet

from . import reference_choices
from .fleets import RESOURCES, Doc, fleets
from .test_properties import examples

GPU_ONLY = [r for r in RESOURCES if "accelerator" in r]
CHOICE_FIELDS = [
    "role",
    "cluster",
    "offering",
    "replicas",
    "hourly_usd",
    "spot",
    "compute_usd",
    "egress_usd",
    "quota_key",
    "usage",
    "cost",
]


def bits(value: Any) -> Any:
    """Floats (and ints standing for them) by their exact bits; anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return float(value).hex()


def choice_row(choice: Any) -> list[Any]:
    return [bits(getattr(choice, name)) for name in CHOICE_FIELDS]


def problem_view(p: Any) -> dict[str, Any]:
    """Everything a problem says, in order, with floats as bits."""
    return {
        "head": (p.name, p.kind, p.pattern, p.roles, p.sources, p.coverage),
        "providers": list(p.providers.items()),
        "choices": [(role, [choice_row(c) for c in cs]) for role, cs in p.choices.items()],
        "rejected": list(p.rejected.items()),
        "role_rejected": list(p.role_rejected.items()),
        "would_cost": [(k, bits(v)) for k, v in p.would_cost.items()],
    }


def assert_same(fleet: Fleet, catalog: Catalog) -> None:
    """Problems field by field, naive costs, then plans (with the LP bound) as bytes."""
    sites = {name: build_site(c, catalog) for name, c in fleet.clusters.items()}
    new = ProblemBuilder(fleet, sites, catalog)
    old = reference_choices.ProblemBuilder(fleet, sites, catalog)
    problems = []
    for workload in fleet.workloads():
        problem = new.build(workload)
        assert problem_view(problem) == problem_view(old.build(workload)), workload.metadata.name
        problems.append(problem)
    everyone = {p.name for p in problems}
    naive = planning.naive_costs(problems, everyone)
    assert json.dumps(naive) == json.dumps(reference_choices.naive_costs(problems, everyone))
    assert plan_bytes(fleet, catalog, reference=False) == plan_bytes(fleet, catalog, reference=True)


def plan_bytes(fleet: Fleet, catalog: Catalog, *, reference: bool) -> bytes:
    builder = reference_choices.ProblemBuilder if reference else ProblemBuilder
    with mock.patch.object(planning, "ProblemBuilder", builder):
        outcome = planning.plan_fleet_detailed(fleet, catalog, lower_bound=True)
    figures = {
        "plan": outcome.plan.to_json(),
        "naive": outcome.plan.naiveUSD,
        "bound": outcome.result.lower_bound.hex(),
    }
    return json.dumps(figures).encode()


@examples(100)
@given(fleets(max_clusters=8, max_workloads=10))
def test_same_as_per_pair_on_random_fleets(docs: list[Doc]) -> None:
    catalog = load_catalog()
    assert_same(documents_to_fleet(docs, catalog), catalog)


@examples(60)
@given(fleets(max_clusters=5, max_workloads=8, resources=GPU_ONLY, tight_quotas=True))
def test_same_as_per_pair_when_quotas_bind(docs: list[Doc]) -> None:
    catalog = load_catalog()
    assert_same(documents_to_fleet(docs, catalog), catalog)


def fleetgen() -> ModuleType:
    """The benchmark's fleet generator (bench/fleetgen.py), loaded from its file."""
    path = Path(__file__).resolve().parents[2] / "bench" / "fleetgen.py"
    spec = importlib.util.spec_from_file_location("fleetgen", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("workloads", "clusters", "seed"),
    [(120, 10, 1), (200, 40, 2), (300, 100, 3)],
)
def test_same_as_per_pair_on_generated_fleets(
    catalog: Catalog, workloads: int, clusters: int, seed: int
) -> None:
    """The benchmark's fleets: private sites, EU residency, many traffic sources and budgets, quotas."""
    docs = fleetgen().generate(workloads, clusters, catalog, seed=seed)
    assert_same(documents_to_fleet(docs, catalog), catalog)
