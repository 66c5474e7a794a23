"""The exact optimiser: decompose by quota coupling, enumerate what stands alone, MILP the rest.

Workloads interact only through quotas. A quota is *binding* when the workloads that could use it could
together exceed it; only binding quotas couple workloads. Each workload's choices are first pruned by
dominance (a choice that uses no binding quota beats every dearer choice that plays the same part in the
pattern's constraints), which is exact and shrinks most problems to a handful of choices. Workloads
linked by binding quotas form a component solved as one 0/1 program on HiGHS with a zero gap; every
other workload is solved exactly by enumeration.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace

import numpy as np

from polycloud.placement.choices import Choice, Problem, QuotaKey, Role
from polycloud.placement.milp import BinaryProgram, Outcome

Solution = tuple[Choice, ...]
MAX_PRUNE_ROUNDS = 5


@dataclass
class Result:
    """Every workload's best choices, the ones that could not be placed, and solver figures."""

    solutions: dict[str, Solution] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    lower_bound: float = 0.0
    components: int = 0
    largest_component: int = 0


def solve(problems: list[Problem], caps: dict[QuotaKey, float], *, lower_bound: bool = False) -> Result:
    """Place every workload at least total cost; see the module docstring for the method."""
    problems = list(problems)
    binding: set[QuotaKey] = set()
    for _ in range(MAX_PRUNE_ROUNDS):
        new = _binding(problems, caps)
        problems = [_prune(p, new) for p in problems]
        if new == binding:
            break
        binding = new
    result = Result()
    for group in _components(problems, binding):
        result.components += 1
        result.largest_component = max(result.largest_component, len(group))
        if len(group) == 1:
            _solve_alone(group[0], result)
        else:
            _solve_coupled(group, binding, caps, result, lower_bound)
    return result


# -- decomposition ---------------------------------------------------------------------------


def _binding(problems: list[Problem], caps: dict[QuotaKey, float]) -> set[QuotaKey]:
    demand: dict[QuotaKey, float] = defaultdict(float)
    for p in problems:
        most: dict[QuotaKey, float] = {}
        for choice in _all_choices(p):
            if choice.quota_key is not None:
                most[choice.quota_key] = max(most.get(choice.quota_key, 0.0), choice.usage)
        for key, usage in most.items():
            demand[key] += usage
    return {key for key, total in demand.items() if total > caps[key] + 1e-9}


def _all_choices(p: Problem) -> list[Choice]:
    return [c for role in dict.fromkeys(p.roles) for c in p.choices[role]]


def _prune(p: Problem, binding: set[QuotaKey]) -> Problem:
    """Drop choices dominated by a cheaper choice that uses no binding quota and interacts alike."""
    group_of, keep = _interaction(p)
    pruned: dict[Role, list[Choice]] = {}
    for role, choices in p.choices.items():
        groups: dict[Hashable, list[Choice]] = defaultdict(list)
        for c in choices:
            groups[group_of(c)].append(c)
        pruned[role] = []
        for members in groups.values():
            members.sort(key=lambda c: (c.cost, c.cluster))
            free = [c for c in members if c.quota_key is None or c.quota_key not in binding][:keep]
            bar = free[-1].cost if len(free) == keep else float("inf")
            pruned[role].extend(free)
            pruned[role].extend(c for c in members if c not in free and c.cost < bar)
    return replace(p, choices=pruned)


def _interaction(p: Problem) -> tuple[Callable[[Choice], Hashable], int]:
    """How choices interact with the pattern's other constraints, and how many free ones to keep."""
    if p.pattern == "active-passive":
        return (lambda c: p.providers[c.cluster]), 1
    if p.pattern == "burst":
        return (lambda c: ()), 2
    if p.pattern == "active-active":
        return (lambda c: (p.providers[c.cluster], tuple(c.cluster in s for s in p.coverage))), 1
    return (lambda c: ()), 1


def _components(problems: list[Problem], binding: set[QuotaKey]) -> list[list[Problem]]:
    parent = list(range(len(problems)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[QuotaKey, int] = {}
    for i, p in enumerate(problems):
        for c in _all_choices(p):
            if c.quota_key in binding:
                j = owner.setdefault(c.quota_key, i)
                parent[find(i)] = find(j)
    groups: dict[int, list[Problem]] = defaultdict(list)
    for i, p in enumerate(problems):
        groups[find(i)].append(p)
    return list(groups.values())


# -- workloads that stand alone ------------------------------------------------------------------


def _solve_alone(p: Problem, result: Result) -> None:
    solution = best_alone(p)
    if solution is None:
        result.failures[p.name] = _pattern_failure(p)
    else:
        result.solutions[p.name] = solution
        result.lower_bound += sum(c.cost for c in solution)


def best_alone(p: Problem) -> Solution | None:
    """The cheapest combination of `p`'s choices that meets its pattern, ignoring other workloads."""
    active = p.choices["active"]
    if p.pattern == "active-active":
        return _best_pair_covering(p, active)
    if len(p.roles) == 1:
        return (min(active, key=_order),) if active else None
    second = p.choices[p.roles[1]]
    best: Solution | None = None
    partners = sorted(second, key=_order)
    for a in active:
        b = next((b for b in partners if _compatible(p, a, b)), None)
        if b is not None and (best is None or _total((a, b)) < _total(best)):
            best = (a, b)
    return best


def _compatible(p: Problem, a: Choice, b: Choice) -> bool:
    """Whether `b` may take the pattern's second role next to primary `a`."""
    if p.pattern == "active-passive":
        return p.providers[b.cluster] != p.providers[a.cluster]
    return b.cluster != a.cluster


def _best_pair_covering(p: Problem, active: list[Choice]) -> Solution | None:
    """Two clusters of different providers whose union covers every traffic source."""
    n = len(active)
    if n < 2:
        return None
    cost = np.array([c.cost for c in active])
    prov = np.array([p.providers[c.cluster] for c in active])
    ok = np.triu(prov[:, None] != prov[None, :], k=1)
    for covered in p.coverage:
        mask = np.array([c.cluster in covered for c in active])
        ok &= mask[:, None] | mask[None, :]
    if not ok.any():
        return None
    total = np.where(ok, cost[:, None] + cost[None, :], np.inf)
    i, j = np.unravel_index(int(np.argmin(total)), total.shape)
    return tuple(sorted((active[int(i)], active[int(j)]), key=_order))


def _order(c: Choice) -> tuple[float, str]:
    return (c.cost, c.cluster)


def _total(s: Solution) -> float:
    return sum(c.cost for c in s)


def _pattern_failure(p: Problem) -> str:
    providers = sorted({p.providers[c.cluster] for c in p.choices["active"]})
    if not p.choices["active"]:
        return "no cluster can run it"
    if p.pattern == "active-active":
        return (
            "active-active needs two clusters of different providers that together meet the latency budget; "
            f"eligible providers: {', '.join(providers)}"
        )
    if p.pattern == "active-passive":
        return (
            f"active-passive needs a standby of another provider than the primary's ({', '.join(providers)})"
        )
    if p.pattern == "burst":
        return "burst needs a burst cluster other than the primary"
    return "no cluster can run it"


# -- workloads coupled by quotas -----------------------------------------------------------------


def _solve_coupled(
    group: list[Problem], binding: set[QuotaKey], caps: dict[QuotaKey, float], result: Result, bound: bool
) -> None:
    program, columns, slack = _program(group, binding, caps, with_slack=False)
    outcome = program.solve()
    if outcome.values is None:
        program, columns, slack = _program(group, binding, caps, with_slack=True)
        outcome = _solve_lexicographic(program, slack)
    if outcome.values is None:  # cannot happen with slack; kept total
        for p in group:
            result.failures[p.name] = "no feasible placement"
        return
    chosen: dict[str, list[Choice]] = defaultdict(list)
    for index, name, choice in columns:
        if outcome.values[index] > 0.5:
            chosen[name].append(choice)
    for p in group:
        if p.name in chosen:
            order = {role: i for i, role in enumerate(p.roles)}
            result.solutions[p.name] = tuple(sorted(chosen[p.name], key=lambda c: (order[c.role], _order(c))))
        elif best_alone(p) is None:
            result.failures[p.name] = _pattern_failure(p)
        else:
            result.failures[p.name] = _contention(p, group, chosen, binding)
    if bound:
        relaxed = program.solve(relax=True)
        result.lower_bound += relaxed.objective if relaxed.values is not None else 0.0
    else:
        result.lower_bound += sum(c.cost for cs in chosen.values() for c in cs)


def _program(
    group: list[Problem], binding: set[QuotaKey], caps: dict[QuotaKey, float], *, with_slack: bool
) -> tuple[BinaryProgram, list[tuple[int, str, Choice]], list[int]]:
    program = BinaryProgram()
    columns: list[tuple[int, str, Choice]] = []
    """(variable index, workload, choice): slack variables sit between choices, so keep the index."""
    slack: list[int] = []
    quota_rows: dict[QuotaKey, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for p in group:
        u = program.var(0.0) if with_slack else None
        if u is not None:
            slack.append(u)
        index: dict[Role, list[int]] = {}
        for role in dict.fromkeys(p.roles):
            index[role] = []
            for c in p.choices[role]:
                i = program.var(c.cost)
                columns.append((i, p.name, c))
                index[role].append(i)
                if c.quota_key in binding:
                    quota_rows[c.quota_key][0].append(i)
                    quota_rows[c.quota_key][1].append(c.usage)
            need = float(p.roles.count(role))
            _equal(program, index[role], need, u)
        _pattern_rows(program, p, index, u)
    for key, (idx, coef) in quota_rows.items():
        program.row(idx, coef, hi=caps[key])
    return program, columns, slack


def _equal(program: BinaryProgram, idx: list[int], need: float, u: int | None) -> None:
    """Σ x = need, or Σ x + need·u = need when the workload may stay unplaced."""
    if u is None:
        program.rows.append((idx, [1.0] * len(idx), need, need))
    else:
        program.rows.append(([*idx, u], [1.0] * len(idx) + [need], need, need))


def _pattern_rows(program: BinaryProgram, p: Problem, index: dict[Role, list[int]], u: int | None) -> None:
    if p.pattern in ("active-passive", "active-active"):
        by_provider: dict[str, list[int]] = defaultdict(list)
        for role in index:
            for i, c in zip(index[role], p.choices[role], strict=True):
                by_provider[p.providers[c.cluster]].append(i)
        for idx in by_provider.values():
            program.row(idx, [1.0] * len(idx), hi=1.0)
    if p.pattern == "burst":
        by_cluster: dict[str, list[int]] = defaultdict(list)
        for role in index:
            for i, c in zip(index[role], p.choices[role], strict=True):
                by_cluster[c.cluster].append(i)
        for idx in by_cluster.values():
            program.row(idx, [1.0] * len(idx), hi=1.0)
    if p.pattern == "active-active":
        for covered in p.coverage:
            idx = [
                i for i, c in zip(index["active"], p.choices["active"], strict=True) if c.cluster in covered
            ]
            if u is None:
                program.rows.append((idx, [1.0] * len(idx), 1.0, float("inf")))
            else:
                program.rows.append(([*idx, u], [1.0] * len(idx) + [1.0], 1.0, float("inf")))


def _solve_lexicographic(program: BinaryProgram, slack: list[int]) -> Outcome:
    """Place as many workloads as possible, then minimise cost among those placements."""
    costs = program.costs
    program.costs = [0.0] * len(costs)
    for u in slack:
        program.costs[u] = 1.0
    first = program.solve()
    program.costs = costs
    if first.values is None:
        return first
    unplaced = round(sum(first.values[u] for u in slack))
    program.row(slack, [1.0] * len(slack), hi=unplaced + 0.5)
    return program.solve()


def _contention(
    p: Problem, group: list[Problem], chosen: dict[str, list[Choice]], binding: set[QuotaKey]
) -> str:
    wanted = {c.quota_key for c in _all_choices(p) if c.quota_key in binding}
    holders = sorted(name for name, cs in chosen.items() if any(c.quota_key in wanted for c in cs))
    keys = ", ".join(f"{k[1]} in {k[0]}" for k in sorted(k for k in wanted if k is not None))
    if not wanted:
        return _pattern_failure(p)
    return f"quota contention: {keys} is taken by {', '.join(holders[:8]) or 'other workloads'}"
