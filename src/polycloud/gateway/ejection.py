"""Passive outlier ejection: replicas that keep failing real requests are taken out for a while.

Policies are small classes registered by name; each sees every outcome of a proxied attempt (success or
failure: a connection error, a 5xx or a timeout; a 4xx is the client's fault and counts as success)
with the time (`time.monotonic()`), and may set `Upstream.ejected_until`. Times come in as arguments,
so the logic is tested on a fake clock.

    consecutive-failures   (default) N failures in a row eject for base × 2^k seconds (k: ejections in a
                           row, capped at max); a success resets the count, and a quiet period as long
                           as the longest ejection forgets k
    never                  no passive ejection (active health checks and retries only)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from polycloud.errors import UserError
from polycloud.gateway.settings import GatewaySettings
from polycloud.gateway.upstreams import Upstream


class EjectionPolicy(ABC):
    """Decides when a failing replica is ejected and for how long."""

    name: ClassVar[str]
    _registry: ClassVar[dict[str, type[EjectionPolicy]]] = {}

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        EjectionPolicy._registry[name] = cls

    def __init__(self, settings: GatewaySettings) -> None:
        """Create the policy from the gateway's settings."""
        self.settings = settings

    @abstractmethod
    def succeeded(self, upstream: Upstream, now: float) -> None:
        """`upstream` answered an attempt with a status below 500 at monotonic time `now`."""

    @abstractmethod
    def failed(self, upstream: Upstream, now: float) -> bool:
        """`upstream` failed an attempt at monotonic time `now`; returns True when this ejects it."""


class ConsecutiveFailures(EjectionPolicy, name="consecutive-failures"):
    """Eject after `eject_after_failures` failures in a row, with a doubling back-off."""

    def succeeded(self, upstream: Upstream, now: float) -> None:
        """See `EjectionPolicy.succeeded`."""
        upstream.consecutive_failures = 0
        if upstream.ejections and now - upstream.last_ejected_at > 2 * self.settings.eject_max_s:
            upstream.ejections = 0

    def failed(self, upstream: Upstream, now: float) -> bool:
        """See `EjectionPolicy.failed`."""
        upstream.consecutive_failures += 1
        if upstream.consecutive_failures < self.settings.eject_after_failures:
            return False
        if upstream.ejected_until > now:
            return False  # already out (an attempt that started before the ejection)
        settings = self.settings
        length = min(settings.eject_max_s, settings.eject_base_s * 2.0 ** min(upstream.ejections, 30))
        upstream.ejections += 1
        upstream.ejected_until = now + length
        upstream.last_ejected_at = now
        upstream.consecutive_failures = 0
        return True


class NoEjection(EjectionPolicy, name="never"):
    """Never ejects; failures only trigger retries."""

    def succeeded(self, upstream: Upstream, now: float) -> None:
        """See `EjectionPolicy.succeeded`."""
        upstream.consecutive_failures = 0

    def failed(self, upstream: Upstream, now: float) -> bool:
        """See `EjectionPolicy.failed`."""
        upstream.consecutive_failures += 1
        return False


def ejection_policies() -> list[str]:
    """Names of every registered ejection policy."""
    return sorted(EjectionPolicy._registry)


def make_ejection_policy(settings: GatewaySettings) -> EjectionPolicy:
    """The policy named by `settings.ejection_policy`.

    Raises:
        UserError: No policy has that name; the message lists the known ones.
    """
    cls = EjectionPolicy._registry.get(settings.ejection_policy)
    if cls is None:
        raise UserError(
            f"unknown ejection policy {settings.ejection_policy!r}; known: {', '.join(ejection_policies())}"
        )
    return cls(settings)
