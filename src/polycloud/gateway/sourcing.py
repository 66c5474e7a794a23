"""`StoreRouteSource`: routes read from the state store that the control plane's reconciler keeps current.

A snapshot is five short reads: the observed replicas (`Store.replicas`), the live workloads
(`Store.current`, for each Service's pattern and project), the Cluster documents (for where each
cluster is: its `location`, else the catalog's coordinates of its provider/region), the active canary
rollouts (for each one's revisions and share of traffic) and the FeatureFlag documents (answered over
OFREP from the table, `polycloud.gateway.flagboard`). A service is listed when it is a
live Service or still has replicas (a deleted one whose replicas are stopping); a Job's replicas are
not routes.

`StoreLoadSink` is the other direction: it writes the gateway's load samples (`polycloud.gateway.reporting`)
to the store's load reports, for the controller's autoscaler, and, given the gateway's `MemberInput`,
heartbeats it into the store's members after each window (so that `polycloud status` lists it) and
removes it on a clean stop (`leave`); it also adds the window's flag evaluations per variant to the
store's per-minute counts (`report_flags`, for the dashboard's shares).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from polycloud.catalog import Catalog
from polycloud.errors import TransientError
from polycloud.exchange import FlagCount, KeyLoad, LoadReport, RevisionCounts
from polycloud.gateway.routes import (
    ClusterRoute,
    FlagRoute,
    FlagSplit,
    ReplicaRoute,
    RouteTable,
    ServiceRoutes,
)
from polycloud.state import MemberInput, ReplicaRecord
from polycloud.state.repositories import ReportRepository, RouteRepository


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def cluster_route(name: str, document: dict[str, Any], catalog: Catalog | None) -> ClusterRoute:
    """Where the cluster described by a stored Cluster document stands.

    Args:
        name: The cluster's name.
        document: The normalised document (`{"spec": {"provider", "region", "location"?...}, ...}`).
        catalog: For a catalog region's coordinates when the document gives no `location`.
    """
    spec = document.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    provider = spec.get("provider") if isinstance(spec.get("provider"), str) else None
    region = spec.get("region") if isinstance(spec.get("region"), str) else None
    location = spec.get("location")
    lat = lon = None
    if isinstance(location, dict):
        lat, lon = _number(location.get("lat")), _number(location.get("lon"))
    if (lat is None or lon is None) and catalog is not None and provider and region:
        found = catalog.region(provider, region)
        if found is not None:
            lat, lon = found.lat, found.lon
    return ClusterRoute(name, provider, region, lat, lon)


def _pattern(spec: dict[str, Any]) -> str:
    inner = spec.get("spec")
    pattern = inner.get("pattern") if isinstance(inner, dict) else None
    return pattern if isinstance(pattern, str) else "single"


def _protocol(spec: dict[str, Any]) -> str:
    inner = spec.get("spec")
    protocol = inner.get("protocol") if isinstance(inner, dict) else None
    return protocol if isinstance(protocol, str) else "oip-v2"


def _affinity(spec: dict[str, Any]) -> bool:
    inner = spec.get("spec")
    return isinstance(inner, dict) and inner.get("prefixAffinity") is True


def _hedge(spec: dict[str, Any]) -> float | None:
    inner = spec.get("spec")
    hedging = inner.get("hedging") if isinstance(inner, dict) else None
    return _number(hedging.get("afterPercentile", 95)) if isinstance(hedging, dict) else None


def _routing(spec: dict[str, Any]) -> FlagSplit | None:
    inner = spec.get("spec")
    routing = inner.get("routing") if isinstance(inner, dict) else None
    if not isinstance(routing, dict) or not isinstance(routing.get("variants"), dict):
        return None
    pairs = tuple((str(v), _target(t)) for v, t in routing["variants"].items())
    return FlagSplit(str(routing.get("flag")), pairs)


def _target(target: Any) -> str | int:
    """A variant's target as stored: a revision number, else a service name."""
    return target if isinstance(target, int) and not isinstance(target, bool) else str(target)


def _held(split: FlagSplit | None, current: int, baseline: int | None) -> tuple[int, ...]:
    """The revisions `split` names that run only for it: not the current one, nor a canary's baseline."""
    named = split.revisions() if split is not None else ()
    return tuple(n for n in named if n not in (current, baseline))


def _flag(name: str, document: dict[str, Any]) -> FlagRoute:
    spec = document.get("spec")
    return FlagRoute(name, spec if isinstance(spec, dict) else {})


def _replica(record: ReplicaRecord) -> ReplicaRoute:
    return ReplicaRoute(
        id=record.id,
        cluster=record.cluster,
        role=record.role,
        endpoint=record.endpoint,
        state=record.state,
        revision=record.revision,
    )


class StoreRouteSource:
    """A `RouteSource` over a `polycloud.state.Store`."""

    def __init__(self, store: RouteRepository, catalog: Catalog | None = None) -> None:
        """Read routes from `store`; `catalog` locates clusters that give no coordinates of their own."""
        self._store = store
        self._catalog = catalog

    def snapshot(self) -> RouteTable:
        """The routes as the store has them now.

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        store = self._store
        try:
            replicas = store.replicas()
            workloads = store.current()
            documents = store.documents("Cluster")
            active = store.active_rollouts()
            flags = [_flag(d.name, d.spec) for d in store.documents("FeatureFlag")]
        except SQLAlchemyError as e:
            raise TransientError(f"cannot read routes from the state store: {e}") from e
        patterns = {w.name: _pattern(w.spec) for w in workloads if w.kind == "Service"}
        hedges = {w.name: _hedge(w.spec) for w in workloads if w.kind == "Service"}
        protocols = {w.name: _protocol(w.spec) for w in workloads if w.kind == "Service"}
        affinity = {w.name for w in workloads if w.kind == "Service" and _affinity(w.spec)}
        projects = {w.name: w.project for w in workloads if w.kind == "Service"}
        rollouts = {r.service: (r.canary, r.weight) for r in active}
        baselines = {r.service: r.baseline for r in active}
        routing = {w.name: _routing(w.spec) for w in workloads if w.kind == "Service"}
        held = {
            w.name: _held(routing[w.name], w.number, baselines.get(w.name))
            for w in workloads
            if w.kind == "Service"
        }
        jobs = {w.name for w in workloads if w.kind != "Service"}
        grouped: dict[str, list[ReplicaRoute]] = {name: [] for name in patterns}
        for record in replicas:
            if record.workload not in jobs:
                grouped.setdefault(record.workload, []).append(_replica(record))
        services = [
            ServiceRoutes(
                name,
                patterns.get(name, "single"),
                tuple(routes),
                rollouts.get(name),
                hedges.get(name),
                protocols.get(name, "oip-v2"),
                name in affinity,
                projects.get(name),
                routing.get(name),
                held.get(name, ()),
            )
            for name, routes in grouped.items()
        ]
        clusters = [cluster_route(d.name, d.spec, self._catalog) for d in documents]
        return RouteTable.of(services, clusters, flags)


def _written(what: str, write: Callable[[], None]) -> None:
    """Run one store write of the reporter's worker; a database error becomes a `TransientError`."""
    try:
        write()
    except SQLAlchemyError as e:
        raise TransientError(f"cannot write {what} to the state store: {e}") from e


class StoreLoadSink:
    """A `LoadSink` writing to a `polycloud.state.Store` (`Store.report_load`), and a `MemberSink`."""

    def __init__(self, store: ReportRepository, member: MemberInput | None = None) -> None:
        """Write load reports to `store`; heartbeat `member` there too (None: no membership)."""
        self._store = store
        self._member = member

    def heartbeat(self, routed: Mapping[str, Sequence[int]]) -> None:
        """Record the gateway as alive now, with what it routes (`Store.heartbeat`); nothing without a
        member.

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        member = self._member
        if member is not None:
            now = replace(member, routes=routed)
            _written("the heartbeat", lambda: self._store.heartbeat(now))

    def leave(self) -> None:
        """Remove the gateway from the members at once (a clean stop); nothing without a member.

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        member = self._member
        if member is not None:
            _written("the departure", lambda: self._store.leave(member.id))

    def report(self, gateway_id: str, samples: list[LoadReport]) -> None:
        """Replace this gateway's load reports with `samples`.

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        _written("load reports", lambda: self._store.report_load(gateway_id, samples))

    def report_revisions(self, gateway_id: str, rows: list[RevisionCounts]) -> None:
        """Replace this gateway's per-revision attempt counts (for judging canaries).

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        _written("revision counts", lambda: self._store.report_revision_counts(gateway_id, rows))

    def report_keys(self, gateway_id: str, samples: list[KeyLoad]) -> None:
        """Replace this gateway's per-inference-key figures (for the observer's anomaly detection).

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        _written("per-key load", lambda: self._store.report_key_loads(gateway_id, samples))

    def report_flags(self, gateway_id: str, counts: list[FlagCount]) -> None:
        """Add this gateway's flag evaluations of the window to the store's per-minute counts.

        Raises:
            TransientError: The database is unreachable, busy or answers with an error.
        """
        _written("flag counts", lambda: self._store.add_flag_counts(gateway_id, counts))
