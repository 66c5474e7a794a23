"""Driver construction by type name: the one place that knows which driver classes exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from polycloud.drivers.base import ClusterDriver, DeclaredSpecs
from polycloud.drivers.kubernetes import KubernetesDriver
from polycloud.drivers.local import LocalDriver
from polycloud.errors import PermanentError
from polycloud.pki.contexts import FleetTls
from polycloud.pki.workload import WorkloadTokens

DriverFactory = Callable[
    [str, Path, DeclaredSpecs | None, FleetTls | None, WorkloadTokens | None], ClusterDriver
]


def _kubernetes(
    cluster: str,
    home: Path,
    declared: DeclaredSpecs | None,
    tls: FleetTls | None,
    identity: WorkloadTokens | None,
) -> ClusterDriver:
    if declared is None:
        raise PermanentError(f"cluster {cluster}: the kubernetes driver needs the declared specs")
    return KubernetesDriver.connect(cluster, declared, tls=tls, identity=identity)


FACTORIES: dict[str, DriverFactory] = {
    "local": lambda cluster, home, declared, tls, identity: LocalDriver(
        cluster, home, tls=tls, identity=identity
    ),
    "kubernetes": _kubernetes,
}


CLASSES: dict[str, type] = {"local": LocalDriver, "kubernetes": KubernetesDriver}
"""The class behind each driver type, for asking what a type can do before building one."""


def driver_class(driver_type: str) -> type | None:
    """The class of drivers of `driver_type`, or None when this build has none."""
    return CLASSES.get(driver_type)


def create_driver(
    driver_type: str,
    cluster: str,
    home: Path,
    declared: DeclaredSpecs | None = None,
    tls: FleetTls | None = None,
    identity: WorkloadTokens | None = None,
) -> ClusterDriver:
    """A driver of `driver_type` for `cluster`; `PermanentError` for a type not available here.

    Args:
        driver_type: The Cluster's `driver.type`.
        cluster: The cluster's name.
        home: The polycloud home (the local driver keeps its records there).
        declared: What is declared (the kubernetes driver reads its Cluster and Service revisions).
        tls: The fleet's mutual TLS (replicas then serve it: local ones from files, Kubernetes ones
            from Secrets); None: plain HTTP.
        identity: The workload issuer: replicas and jobs get identity token files; None: no tokens.
    """
    factory = FACTORIES.get(driver_type)
    if factory is None:
        raise PermanentError(
            f"cluster {cluster}: driver type {driver_type!r} is not available in this build "
            f"(available: {', '.join(sorted(FACTORIES))})"
        )
    return factory(cluster, home, declared, tls, identity)
