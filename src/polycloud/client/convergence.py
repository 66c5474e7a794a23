"""Reading a status answer (DESIGN.md §5 shape): is a rollout done?"""

from __future__ import annotations

from typing import Any


def is_converged(status: dict[str, Any], names: set[str] | None = None) -> bool:
    """True when every (named) service runs exactly its desired replicas, all ready, all on the
    service's current revision (so a rolling update counts as done only when it is); replicas of the
    revisions its flag routes to (`held`) are not counted, but must be ready too."""
    return all(_converged(svc) for svc in status["services"] if names is None or svc["name"] in names)


def _converged(svc: dict[str, Any]) -> bool:
    held = set(svc.get("held", ()))
    for c in svc["clusters"]:
        own = [r for r in c["replicas"] if r["revision"] not in held]
        if len(own) != c["desired"] or any(r["state"] != "ready" for r in c["replicas"]):
            return False
        if any(r["revision"] != svc["revision"] for r in own):
            return False
    return True
