"""Routing by feature flag: a Service with `spec.routing` sends each OIP request to the service that its
flag's variant names, or to the replicas of the revision of itself that the variant names (falling back
to its current revision while that one has no replica to offer), so that flipping the flag moves
traffic within one route refresh.

The flag is evaluated per request, on the event loop, by the same `FlagBoard` that answers OFREP (no
I/O). Its context: `targetingKey` from the `x-polycloud-targeting-key` header, else the admitted
inference key's id (so a key's requests stay on one side of a split), else none (a `fractional` split
then answers the flag's default variant); `region` and `cluster` as for OFREP; `project` of the
service called; `inferenceKey` when one was admitted; `service`, the service called. A variant the
routing does not list, a disabled flag, an unknown flag or an evaluation error leave the request with
the service called. The request keeps the key check of the service called: the chosen service's own
keys are not asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openfeature.evaluation_context import EvaluationContext

from polycloud.gateway.keyload import KEY_ID_SCOPE
from polycloud.gateway.ofrep import OfrepFront, header
from polycloud.gateway.routes import FlagSplit, ServiceRoutes
from polycloud.gateway.wire import Scope

TARGETING_KEY = b"x-polycloud-targeting-key"
MODELS = b"/v2/models/"


class FlagRouter:
    """Chooses the service of each request to a flag-routed service."""

    def __init__(self, front: OfrepFront) -> None:
        """Evaluate with `front`'s board and facts."""
        self._front = front
        self._splits: dict[str, tuple[str, dict[str, str | int]]] = {}

    def follow(self, services: Mapping[str, ServiceRoutes]) -> None:
        """Take the routing of a new route table's services."""
        self._splits = {name: _split(s.routing) for name, s in services.items() if s.routing is not None}

    def route(self, service: str, scope: Scope) -> str | int:
        """What serves this request to `service`: a service (itself unless its flag says otherwise), or
        a revision number of `service`."""
        split = self._splits.get(service)
        if split is None:
            return service
        flag, targets = split
        answer = self._front.board.evaluate(flag, self._context(service, scope))
        variant = answer.body.get("variant") if answer.status == 200 and "value" in answer.body else None
        return targets.get(variant, service) if isinstance(variant, str) else service

    def _context(self, service: str, scope: Scope) -> EvaluationContext:
        headers = scope["headers"]
        key_id = scope.get(KEY_ID_SCOPE)
        facts = self._front.facts
        attributes: dict[str, Any] = {"service": service}
        known = {
            "region": header(headers, b"x-polycloud-client-region") or facts.region,
            "cluster": facts.cluster,
            "project": (facts.projects or {}).get(service),
            "inferenceKey": key_id,
        }
        attributes.update({k: v for k, v in known.items() if v is not None})
        targeting_key = header(headers, TARGETING_KEY) or (None if key_id is None else str(key_id))
        return EvaluationContext(targeting_key, attributes)


def rewritten(raw: bytes, service: str, target: str) -> bytes | None:
    """`raw` (an OIP path of `service`) naming `target` instead; None when it does not start as expected."""
    prefix = MODELS + service.encode()
    if raw != prefix and not raw.startswith(prefix + b"/"):
        return None
    return MODELS + target.encode() + raw[len(prefix) :]


def _split(routing: FlagSplit) -> tuple[str, dict[str, str | int]]:
    return routing.flag, dict(routing.variants)
