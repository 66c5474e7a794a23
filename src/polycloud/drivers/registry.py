"""Driver construction by type name: the one place that knows which driver classes exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from polycloud.drivers.base import ClusterDriver
from polycloud.drivers.local import LocalDriver
from polycloud.errors import PermanentError

DriverFactory = Callable[[str, Path], ClusterDriver]

FACTORIES: dict[str, DriverFactory] = {
    "local": lambda cluster, home: LocalDriver(cluster, home),
}


def create_driver(driver_type: str, cluster: str, home: Path) -> ClusterDriver:
    """A driver of `driver_type` for `cluster`; `PermanentError` for a type not available here."""
    factory = FACTORIES.get(driver_type)
    if factory is None:
        raise PermanentError(
            f"cluster {cluster}: driver type {driver_type!r} is not available in this build "
            f"(available: {', '.join(sorted(FACTORIES))})"
        )
    return factory(cluster, home)
