"""Evaluate every rule of every Policy of a fleet; the result lists violations and unchecked rules."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from polycloud.catalog import Catalog
from polycloud.policy.context import Context
from polycloud.policy.costs import Placed, check_budgets, check_egress, check_placed
from polycloud.policy.documents import check_labels, check_models, check_secrets
from polycloud.policy.scope import place_of, selects
from polycloud.policy.sites import check_allow_lists, check_residency
from polycloud.policy.violations import Report, Violation
from polycloud.spec.fleet import Fleet


def evaluate(
    fleet: Fleet,
    catalog: Catalog,
    *,
    plan: Iterable[Placed] | None = None,
    digests: Mapping[str, str] | None = None,
    secrets: Collection[str] | None = None,
) -> Report:
    """Check `fleet` against its own policies.

    `plan` (the plan's placements) enables the budget, egress and placed-where rules; `digests` maps a
    Service to its model file's sha256 when the spec gives none; `secrets` names the secrets that
    exist (None: unknown, so `requiredSecrets` becomes a note). A fleet without policies is clean.
    """
    report = Report()
    if not fleet.policies:
        return report
    places = {name: place_of(cluster, catalog) for name, cluster in fleet.clusters.items()}
    placed = {p.workload: p for p in plan} if plan is not None else None
    for name in sorted(fleet.policies):
        policy = fleet.policies[name]
        selected = [w for w in fleet.workloads() if selects(policy, w)]
        ctx = Context(fleet, policy, places, selected)
        check_allow_lists(ctx)
        check_residency(ctx)
        check_labels(ctx)
        check_models(ctx, digests)
        check_secrets(ctx, secrets)
        if placed is not None:
            check_placed(ctx, placed)
            check_budgets(ctx, placed)
            check_egress(ctx, placed)
        report.violations.extend(ctx.violations)
        report.notes.extend(ctx.notes)
    report.violations = _once(report.violations)
    return report


def _once(violations: list[Violation]) -> list[Violation]:
    """Residency is the same law whichever policy enforces it: report each breach once, in file order."""
    seen: set[tuple[str, str, str, str]] = set()
    kept = []
    for v in violations:
        key = (v.kind, v.document, v.field, v.message)
        if v.rule == "enforceResidency" and key in seen:
            continue
        seen.add(key)
        kept.append(v)
    return sorted(kept, key=lambda v: (v.file, v.line, v.col, v.policy, v.rule))
