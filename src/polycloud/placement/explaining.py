"""Why a workload went where it did, and why one could not be placed — in words a reviewer can check."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from polycloud.placement.choices import Problem, QuotaKey
from polycloud.placement.solving import Solution, best_alone


def explain(p: Problem, solution: Solution, reason_for_unused: dict[str, str]) -> str:
    """Name the choice, the cheapest cluster ruled out (and why), and the next-best plan's cost."""
    primary = solution[0]
    total = sum(c.cost for c in solution)
    parts = [_chosen(p, solution, total)]
    cheaper = sorted(
        (cost, name)
        for name, cost in p.would_cost.items()
        if cost < primary.cost - 1e-9 and name not in {c.cluster for c in solution}
    )
    for cost, name in cheaper[:1]:
        why = _why_not(p, name, reason_for_unused)
        parts.append(f"Cheaper {name} (${cost:,.2f}) is ruled out: {why}.")
    runner_up = _runner_up(p, primary.cluster)
    if runner_up is not None:
        alt_total = sum(c.cost for c in runner_up)
        where = " + ".join(f"{c.cluster} ({c.role})" for c in runner_up)
        parts.append(f"Next best: {where} at ${alt_total:,.2f} (+${alt_total - total:,.2f}).")
    else:
        parts.append(f"Without {primary.cluster}, no other combination meets the constraints.")
    return " ".join(parts)


def _chosen(p: Problem, solution: Solution, total: float) -> str:
    roles = ", ".join(
        f"{c.cluster} {c.role} ({c.offering.instance_type} ${c.hourly_usd:g}/h{' spot' if c.spot else ''})"
        for c in solution
    )
    egress = sum(c.egress_usd for c in solution)
    period = "per run" if p.kind == "Job" else "per month"
    money = f"${total:,.2f} {period}"
    if egress > 0:
        money += f" incl. ${egress:,.2f} data egress"
    return f"{roles}: {money}."


def _why_not(p: Problem, cluster: str, reason_for_unused: dict[str, str]) -> str:
    if cluster in p.rejected:
        return "; ".join(p.rejected[cluster])
    if ("active", cluster) in p.role_rejected:
        return p.role_rejected[("active", cluster)]
    return reason_for_unused.get(cluster, "it does not fit the pattern's other constraints")


def _runner_up(p: Problem, primary_cluster: str) -> Solution | None:
    """The best plan for `p` alone that does not use its chosen primary cluster."""
    others = {role: [c for c in cs if c.cluster != primary_cluster] for role, cs in p.choices.items()}
    return best_alone(replace(p, choices=others))


def quota_holders(chosen: dict[str, Solution]) -> dict[QuotaKey, list[str]]:
    """Which placed workloads hold each quota (built once per plan)."""
    holders: dict[QuotaKey, list[str]] = defaultdict(list)
    for name, solution in chosen.items():
        for key in {c.quota_key for c in solution if c.quota_key is not None}:
            holders[key].append(name)
    return holders


def unused_reasons(p: Problem, holding: dict[QuotaKey, list[str]]) -> dict[str, str]:
    """For clusters `p` could use alone but did not: the quota holders that took them."""
    reasons: dict[str, str] = {}
    for c in p.choices["active"]:
        if c.quota_key is None:
            continue
        holders = [name for name in holding.get(c.quota_key, []) if name != p.name]
        if holders:
            reasons[c.cluster] = f"its {c.quota_key[1]} quota is taken by {', '.join(sorted(holders)[:5])}"
    return reasons


def infeasible_reasons(p: Problem, failure: str) -> list[str]:
    """The failure, then each cluster's reasons, grouping clusters that share the same reason."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for cluster, reasons in p.rejected.items():
        for reason in reasons:
            by_reason[reason].append(cluster)
    for (role, cluster), reason in p.role_rejected.items():
        by_reason[f"{role} role: {reason}" if role != "active" else reason].append(cluster)
    lines = [failure]
    for reason, clusters in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = ", ".join(sorted(clusters)[:6]) + (
            f" and {len(clusters) - 6} more" if len(clusters) > 6 else ""
        )
        lines.append(f"{shown}: {reason}")
    return lines
