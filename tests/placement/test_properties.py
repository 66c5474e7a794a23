"""Property tests: on random small fleets the plan is the brute-force optimum, sound, and priced right.

Fleets come from `fleets.py`; the oracle (`oracle.py`) re-derives DESIGN.md §4 on its own and searches
every combination. Runs are derandomised, so a failure is reproducible and never flaky; while hunting
bugs, `POLYCLOUD_PROPERTY_EXAMPLES=20` runs twenty times as many examples (a scale factor).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, event, given, note, settings

from polycloud.catalog import load_catalog
from polycloud.placement import plan_fleet, plan_fleet_detailed
from polycloud.services.documents import documents_to_fleet
from polycloud.spec import load_fleet

from .fleets import RESOURCES, Doc, fleets
from .oracle import Oracle, close

SCALE = float(os.environ.get("POLYCLOUD_PROPERTY_EXAMPLES", "1"))
GPU_ONLY = [r for r in RESOURCES if "accelerator" in r]


def examples(n: int) -> settings:
    """Derandomised, untimed settings with `n` examples (times the scale factor).

    Shrinking is off to keep the folder fast even when a case fails: the failing fleet is printed as
    YAML (`note`), and the regression tests in `test_cases.py` hold minimal reproductions.
    """
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def check_against_oracle(docs: list[Doc]) -> None:
    """Plan `docs` and hold the plan to the oracle: optimum, soundness, prices, infeasibility."""
    note(yaml.safe_dump_all(docs, sort_keys=False))
    catalog = load_catalog()
    fleet = documents_to_fleet(docs, catalog)
    outcome = plan_fleet_detailed(fleet, catalog, lower_bound=True)
    plan = outcome.plan.to_json()
    oracle = Oracle(fleet, catalog)
    best = oracle.optimum()
    chosen = {
        p["workload"]: [(a["role"], a["cluster"]) for a in p["assignments"]] for p in plan["placements"]
    }
    note(f"plan: {chosen}")
    note(f"oracle: {[(n, [(x.role, x.cluster) for x in o.parts]) for n, o in best.placed.items()]}")
    largest = outcome.result.largest_component
    event(f"components: largest {min(largest, 3)}{'+' if largest > 3 else ''}")
    event("some workload infeasible" if best.unplaced else "all placed")

    # (b) and (c): no constraint broken; every figure is the model's, and the totals add up.
    assert oracle.check(plan) == []
    # (a) and (d): as many placed as possible, at the least cost, and every other one explained.
    assert len(plan["placements"]) == len(best.placed)
    assert close(plan["totalUSD"], best.total), (plan["totalUSD"], best.total)
    assert len(plan["infeasible"]) == len(best.unplaced)
    # The LP bound never exceeds the optimum.
    assert outcome.result.lower_bound <= best.total * (1 + 1e-9) + 1e-6


@examples(400)
@given(fleets())
def test_plan_equals_brute_force_on_random_fleets(docs: list[Doc]) -> None:
    """Any small fleet: every pattern, jobs, data, residency, latency, allow-lists, some quotas."""
    check_against_oracle(docs)


@examples(300)
@given(fleets(max_clusters=4, max_workloads=5, resources=GPU_ONLY, tight_quotas=True))
def test_plan_equals_brute_force_when_workloads_compete_for_quota(docs: list[Doc]) -> None:
    """GPU workloads on clusters that all have small quotas: coupled components, MILP, contention."""
    check_against_oracle(docs)


@examples(20)
@given(fleets(max_clusters=3, max_workloads=3))
def test_yaml_files_plan_like_documents(docs: list[Doc]) -> None:
    """The same fleet written as YAML files and read by `load_fleet` plans to the same JSON."""
    catalog = load_catalog()
    from_documents = plan_fleet(documents_to_fleet(docs, catalog), catalog).to_json()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kinds: dict[str, list[dict[str, Any]]] = {}
        for doc in docs:
            kinds.setdefault(doc["kind"], []).append(doc)
        for kind, group in kinds.items():
            (folder / f"{kind.lower()}s.yaml").write_text(yaml.safe_dump_all(group, sort_keys=False))
        from_files = plan_fleet(load_fleet([folder], catalog), catalog).to_json()
    assert from_files == from_documents
