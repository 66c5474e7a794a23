"""The injected-fault state of one local cluster, shared between processes through a JSON file.

`$home/faults/<cluster>.json` holds whether the cluster is down, whether it is frozen (its replicas
stopped with SIGSTOP), and the extra delay and error rate its replicas must apply. An API process
injects, a reconciler in another thread or process reads it, and it survives restarts until
`clear_faults()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polycloud.drivers.local.files import file_lock, read_json, remove, write_json


@dataclass(frozen=True)
class FaultState:
    """Faults in force for a cluster; the default is a healthy cluster."""

    down: bool = False
    delay_ms: float = 0.0
    error_rate: float = 0.0
    frozen: bool = False
    """Every replica process of the cluster is stopped (SIGSTOP), those started meanwhile included."""


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class FaultStore:
    """Reads and changes the fault file of one cluster."""

    def __init__(self, home: Path, cluster: str) -> None:
        self.path = home / "faults" / f"{cluster}.json"
        self._lock_path = home / "faults" / f".{cluster}.lock"

    def load(self) -> FaultState:
        """The faults in force now (a healthy state when the file is missing or unreadable)."""
        data = read_json(self.path)
        if data is None:
            return FaultState()
        return FaultState(
            down=data.get("down") is True,
            delay_ms=_number(data.get("delayMs")),
            error_rate=_number(data.get("errorRate")),
            frozen=data.get("frozen") is True,
        )

    def update(self, change: Callable[[FaultState], FaultState]) -> FaultState:
        """Read-modify-write the state under the cluster's fault lock.

        Args:
            change: Maps the current state to the new one.

        Returns:
            The new state.
        """
        with file_lock(self._lock_path):
            new = change(self.load())
            if new == FaultState():
                remove(self.path)
            else:
                write_json(
                    self.path,
                    {
                        "down": new.down,
                        "delayMs": new.delay_ms,
                        "errorRate": new.error_rate,
                        "frozen": new.frozen,
                    },
                )
            return new

    def clear(self) -> None:
        """Return to a healthy state."""
        self.update(lambda _: FaultState())
