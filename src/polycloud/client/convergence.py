"""Reading a status answer (DESIGN.md §5 shape): is a rollout done?"""

from __future__ import annotations

from typing import Any


def is_converged(status: dict[str, Any], names: set[str] | None = None) -> bool:
    """True when every (named) service runs exactly its desired replicas, all ready, all on the
    service's current revision (so a rolling update counts as done only when it is)."""
    return all(
        len(c["replicas"]) == c["desired"]
        and all(r["state"] == "ready" and r["revision"] == svc["revision"] for r in c["replicas"])
        for svc in status["services"]
        if names is None or svc["name"] in names
        for c in svc["clusters"]
    )
