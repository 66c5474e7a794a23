"""Canary rollout use cases: show them, and let an operator pause, resume or abort one.

The controller drives rollouts (`polycloud.controller.rollouts`); these only record an operator's
decision, which the controller follows at its next pass. Aborting restores the baseline revision in the
same transaction that ends the rollout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from polycloud.errors import NotFoundError
from polycloud.state import EventInput
from polycloud.state.repositories import RolloutRepository
from polycloud.state.repositories_services import RolloutControlRepository

Action = Literal["pause", "resume", "abort"]


def rollouts(store: RolloutRepository, service: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Rollouts newest first (of one service, or of every service)."""
    return [r.to_json() for r in store.rollouts(service, limit=limit)]


def rollout(store: RolloutControlRepository, service: str) -> dict[str, Any]:
    """The latest rollout of `service`.

    Raises:
        NotFoundError: It never had one.
    """
    found = store.rollouts(service, limit=1)
    if not found:
        store.history(service)  # an unknown service is named as such, with close names
        raise NotFoundError(f"service {service!r} has had no canary rollout")
    return found[0].to_json()


def control(
    store: RolloutControlRepository, service: str, action: Action, actor: str, on_change: Callable[[], None]
) -> dict[str, Any]:
    """Pause, resume or abort the rollout in progress of `service`.

    Raises:
        NotFoundError: No rollout is in progress.
        ConflictError: Pausing a paused rollout, or resuming a progressing one.
    """
    if action == "abort":
        record = store.end_rollout(
            service, state="aborted", message=f"aborted by {actor}: back to the baseline", author=actor
        )
        reason = "RolloutAborted"
    else:
        to: Literal["paused", "progressing"] = "paused" if action == "pause" else "progressing"
        record = store.control_rollout(service, to=to, message=f"{action}d by {actor}")
        reason = "RolloutPaused" if action == "pause" else "RolloutResumed"
    store.add_events([EventInput(level="info", reason=reason, message=record.message, workload=service)])
    on_change()
    return record.to_json()
