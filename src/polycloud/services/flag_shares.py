"""How the gateways evaluated each flag lately: counts and shares per variant, and where each variant
routes the services that a flag routes (`spec.routing`).

The counts come from the store's per-minute totals (`Store.flag_counts`, written by every gateway with
its load reports). An outcome is a variant, "no variant" (a disabled flag or no default variant: the
caller's code default) or an error code; shares are of every evaluation in the window, so the shares of
a flag add up to 1 (or every share is 0, without evaluations).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from polycloud.exchange import FlagCount
from polycloud.state.records import WorkloadState

DEFAULT_WINDOW_S = 900
"""The window of the shares unless the caller says: the last 15 minutes."""
MIN_WINDOW_S = 60
MAX_WINDOW_S = 86400
"""Counts are per minute and kept a day (`polycloud.state.flag_counts.KEEP_S`)."""


def routing_of(workloads: Iterable[WorkloadState], project: str | None) -> dict[str, list[dict[str, Any]]]:
    """Per flag: the services it routes, `{"service", "variants": {variant: target}}` (a target is a
    Service name or a revision number of this service), sorted by service (only the services of
    `project` when given)."""
    routes: dict[str, list[dict[str, Any]]] = {}
    for w in sorted(workloads, key=lambda w: w.name):
        inner = w.spec.get("spec")
        routing = inner.get("routing") if isinstance(inner, dict) else None
        if w.kind != "Service" or not isinstance(routing, dict) or (project and w.project != project):
            continue
        variants = routing.get("variants")
        targets = {str(v): t for v, t in variants.items()} if isinstance(variants, dict) else {}
        routes.setdefault(str(routing.get("flag")), []).append({"service": w.name, "variants": targets})
    return routes


def shares(
    flag: str, variants: list[str], counts: list[FlagCount], routes: list[dict[str, Any]], window_s: int
) -> dict[str, Any]:
    """Flag `flag`'s evaluations in the window: every declared variant (0 when not evaluated), then any
    other variant counted (one the flag had before), no variant, and each error code."""
    mine = [c for c in counts if c.flag == flag]
    total = sum(c.count for c in mine)
    answered = {c.variant: c.count for c in mine if not c.error}
    named = variants + sorted(v for v in answered if v and v not in variants)
    outcomes: list[dict[str, Any]] = []
    for variant in named:
        to = [_route(r["service"], r["variants"].get(variant)) for r in routes]
        outcomes.append(_outcome(variant, None, answered.get(variant, 0), total) | {"routesTo": to})
    if answered.get(""):
        outcomes.append(_outcome(None, None, answered[""], total))
    outcomes += [_outcome(None, c.error, c.count, total) for c in mine if c.error]
    return {"windowS": window_s, "total": total, "shares": outcomes}


def _route(service: str, target: object) -> dict[str, Any]:
    """Where a variant sends `service`'s requests: `to` a service (itself when the routing does not name
    the variant), and `revision`, a revision of the same service, or None."""
    if isinstance(target, int) and not isinstance(target, bool):
        return {"service": service, "to": service, "revision": target}
    return {"service": service, "to": str(target) if target is not None else service, "revision": None}


def _outcome(variant: str | None, error: str | None, count: int, total: int) -> dict[str, Any]:
    return {"variant": variant, "error": error, "count": count, "share": count / total if total else 0.0}
