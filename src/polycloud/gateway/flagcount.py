"""Flag evaluations per (flag, variant) over one report window, for the dashboard's variant shares.

Every evaluation of the `FlagBoard` (OFREP single and bulk, and the routing decisions of flag-routed
services, which evaluate through the same board) is counted by `GatewayMetrics.flag_evaluated`;
`RecordingMetrics` also hands it to a `FlagWindow`: a dict lookup and an addition, no I/O. The load
reporter closes the window every second and writes its counts from its worker thread when the sink is
a `FlagSink`; counts of a window that could not be written go back into the next one (`unreported`).

What is counted: an answer with a variant under that variant; an answer without one (a disabled flag,
or no default variant and no rule matched: the caller's code default) under the empty variant; an
error under its OFREP code (variant empty). Keys that name no flag (FLAG_NOT_FOUND) are not counted
here (any caller may send any key; /metrics counts them under flag ""). Memory is bounded by the flags
the gateway holds: their variants and the few error codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from openfeature.exception import ErrorCode

from polycloud.exchange import FlagCount

ERROR_CODES = frozenset(str(code) for code in ErrorCode)
"""What `flag_evaluated` receives as its reason for an error (OFREP's error codes)."""

Outcome = tuple[str, str, str]
"""(flag, variant, error code)."""


@runtime_checkable
class FlagSink(Protocol):
    """Where flag counts go; called from the load reporter's worker thread, once per window."""

    def report_flags(self, gateway_id: str, counts: list[FlagCount]) -> None:
        """Add `counts` to the store's per-minute totals of this gateway.

        Raises:
            PolycloudError: The counts could not be written (the reporter keeps them for the next window).
        """


class FlagWindow:
    """Evaluations per (flag, variant, error code) since the window began; lives on the event loop."""

    def __init__(self) -> None:
        """Start an empty window."""
        self._counts: dict[Outcome, int] = {}

    def evaluated(self, flag: str, variant: str, reason: str) -> None:
        """Count one evaluation; `reason` is the OpenFeature reason or an error code (request path)."""
        self.evaluated_all(((flag, variant, reason),))

    def evaluated_all(self, answers: Sequence[Outcome]) -> None:
        """Count a bulk answer's evaluations, (flag, variant, reason) each, as `evaluated` would."""
        counts = self._counts
        for flag, variant, reason in answers:
            if flag:  # else FLAG_NOT_FOUND: a key the caller made up
                key = (flag, "", reason) if reason in ERROR_CODES else (flag, variant, "")
                counts[key] = counts.get(key, 0) + 1

    def unreported(self, counts: list[FlagCount]) -> None:
        """Give `counts`, which could not be written, to the next window."""
        for c in counts:
            key = (c.flag, c.variant, c.error)
            self._counts[key] = self._counts.get(key, 0) + c.count

    def close(self) -> list[FlagCount]:
        """The window's counts sorted by (flag, variant, error); a new window begins."""
        counts, self._counts = self._counts, {}
        return [FlagCount(flag, variant, error, n) for (flag, variant, error), n in sorted(counts.items())]
