"""Simulated geography and failures: a delay added to every `/v2` answer and a rate of injected 500s.

The local driver runs every "cloud" on one machine, so a replica plays its distance and its failures:

- the *base* delay and error rate come from the command line (`--delay-ms`, `--error-rate`): the
  network distance between the gateway and the replica's cluster, fixed for the replica's life;
- the *extra* delay and error rate are injected at run time through `GET/POST /_polycloud/faults`
  (`{"delayMs": 250, "errorRate": 0.1}`) for drills, and start at zero.

A request waits base + extra delay; an inference request fails when either error draw hits, so the
rates combine as independent failures: `1 - (1 - base) * (1 - extra)`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from polycloud.errors import UserError

MAX_DELAY_MS = 600_000.0
"""Ten minutes: more is surely a mistake."""


class InvalidFaults(UserError):
    """A fault setting out of range or of the wrong type (HTTP 400)."""


@dataclass(frozen=True)
class FaultSettings:
    """A delay in milliseconds and an error rate in [0, 1]."""

    delay_ms: float = 0.0
    error_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay_ms) and 0.0 <= self.delay_ms <= MAX_DELAY_MS):
            raise InvalidFaults(f"delayMs must be between 0 and {MAX_DELAY_MS:.0f}, not {self.delay_ms}")
        if not (math.isfinite(self.error_rate) and 0.0 <= self.error_rate <= 1.0):
            raise InvalidFaults(f"errorRate must be between 0 and 1, not {self.error_rate}")


def _number(data: dict[str, Any], key: str, default: float) -> float:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidFaults(f"{key} must be a number")
    return float(value)


class Faults:
    """The fault settings of one replica: fixed base plus run-time extra."""

    def __init__(self, base: FaultSettings, rng: random.Random | None = None) -> None:
        """Create the settings.

        Args:
            base: The command-line delay and error rate.
            rng: Source of the error draws (seed one in tests); a fresh unseeded one by default.
        """
        self.base = base
        self.extra = FaultSettings()
        self._rng = rng or random.Random()

    @property
    def delay_s(self) -> float:
        """The total delay to add to an answer, in seconds."""
        return (self.base.delay_ms + self.extra.delay_ms) / 1000.0

    def should_fail(self) -> bool:
        """Draw whether this inference request is answered with an injected 500."""
        if self.base.error_rate <= 0.0 and self.extra.error_rate <= 0.0:
            return False
        return self._rng.random() < self.base.error_rate or self._rng.random() < self.extra.error_rate

    def update(self, data: Any) -> None:
        """Change the extra delay and error rate; a key left out keeps its value.

        Args:
            data: A decoded JSON object `{"delayMs"?: number, "errorRate"?: number}`.

        Raises:
            InvalidFaults: `data` is not such an object, or a value is out of range.
        """
        if not isinstance(data, dict):
            raise InvalidFaults('the body must be a JSON object like {"delayMs": 100, "errorRate": 0.1}')
        unknown = sorted(set(data) - {"delayMs", "errorRate"})
        if unknown:
            raise InvalidFaults(f"unknown field {unknown[0]!r} (expected delayMs, errorRate)")
        self.extra = FaultSettings(
            delay_ms=_number(data, "delayMs", self.extra.delay_ms),
            error_rate=_number(data, "errorRate", self.extra.error_rate),
        )

    def to_json(self) -> dict[str, float]:
        """The extra settings as the admin API shows them, with the base ones beside them."""
        return {
            "delayMs": self.extra.delay_ms,
            "errorRate": self.extra.error_rate,
            "baseDelayMs": self.base.delay_ms,
            "baseErrorRate": self.base.error_rate,
        }
