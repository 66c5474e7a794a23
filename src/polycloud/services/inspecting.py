"""Read-side use cases: fleet status (DESIGN.md §5 shape), history, events, and rollback."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polycloud.state import MemberRecord, ReplicaRecord, RevisionRecord
from polycloud.state.repositories import ControlPlaneReader, EventReader, HistoryReader
from polycloud.state.repositories_services import RollbackRepository, StatusReader


@dataclass(frozen=True)
class Endpoints:
    api_url: str
    gateway_url: str
    host: str = ""
    """This server's host name: members elsewhere show no pid (it would mean nothing here)."""


MEMBER_MAX_AGE_S = 10.0
"""Status lists the servers and gateways that heartbeat (every second) within this window."""
ANOMALY_WINDOW_S = 900.0
"""Status shows the anomalies of the last 15 minutes."""


def fleet_status(store: StatusReader, endpoints: Endpoints) -> dict[str, Any]:
    """`polycloud status --json`: every service, its clusters in plan order, and their replicas."""
    replicas: dict[tuple[str, str], list[ReplicaRecord]] = defaultdict(list)
    for r in store.replicas():
        replicas[(r.workload, r.cluster)].append(r)
    services = []
    canaries = {r.service: r for r in store.active_rollouts()}
    for w in store.current():
        if w.kind != "Service":
            continue
        clusters = []
        seen = set()
        for a in w.placement:
            cluster = str(a["cluster"])
            seen.add(cluster)
            clusters.append(
                _cluster(cluster, str(a["role"]), int(a["replicas"]), replicas[(w.name, cluster)], w.number)
            )
        for (service, cluster), reps in sorted(replicas.items()):
            if service == w.name and cluster not in seen:
                clusters.append(_cluster(cluster, reps[0].role, 0, reps, w.number))
        entry: dict[str, Any] = {"name": w.name, "revision": f"r{w.number}", "clusters": clusters}
        if held := held_revisions(w.spec, w.number):
            entry["held"] = [f"r{n}" for n in held]
        if w.name in canaries:
            entry["rollout"] = canaries[w.name].to_json()
        services.append(entry)
    return {
        "gateway": {"url": endpoints.gateway_url},
        "api": {"url": endpoints.api_url},
        "controlPlane": control_plane(store, endpoints.host),
        "services": services,
        "anomalies": [a.to_json() for a in store.anomalies(ANOMALY_WINDOW_S, limit=20)],
    }


def held_revisions(document: dict[str, Any], current: int) -> list[int]:
    """The older revisions a Service's routing by a flag names: their replicas are kept running."""
    spec = document.get("spec")
    routing = spec.get("routing") if isinstance(spec, dict) else None
    variants = routing.get("variants") if isinstance(routing, dict) else None
    targets = variants.values() if isinstance(variants, dict) else ()
    return sorted({t for t in targets if type(t) is int and t != current})


def control_plane(store: ControlPlaneReader, host: str) -> dict[str, Any]:
    """Who leads at which epoch, and every server and gateway heard from lately (pid: on this host)."""
    lease = store.lease()
    live = lease is not None and lease.remaining_s > 0
    leader = lease.holder if live and lease is not None else None
    members = store.members(MEMBER_MAX_AGE_S)

    def seen(m: MemberRecord) -> dict[str, Any]:
        return {"pid": m.pid if m.host == host else None, "lastSeen": m.last_seen.isoformat()}

    return {
        "leader": leader,
        "epoch": lease.epoch if lease is not None else 0,
        "servers": [
            {"id": m.id, "api": m.url, **seen(m), "leader": m.id == leader}
            for m in members
            if m.role == "server"
        ],
        "gateways": [
            {"id": m.id, "url": m.url, **seen(m), "routes": _routes(m)}
            for m in members
            if m.role == "gateway"
        ],
    }


def _routes(member: MemberRecord) -> dict[str, list[str]]:
    """What a gateway routes: each service's revisions with a ready replica in its table."""
    return {name: [f"r{n}" for n in numbers] for name, numbers in (member.routes or {}).items()}


def _cluster(
    cluster: str, role: str, desired: int, reps: list[ReplicaRecord], revision: int
) -> dict[str, Any]:
    """One cluster of a service; `ready` counts only replicas of the service's current `revision`, so a
    rollout whose new replicas never start never shows as ready on the old ones."""
    return {
        "cluster": cluster,
        "role": role,
        "desired": desired,
        "ready": sum(1 for r in reps if r.state == "ready" and r.revision == revision),
        "replicas": [
            {
                "id": r.id,
                "endpoint": r.endpoint,
                "pid": r.pid,
                "state": r.state,
                "revision": f"r{r.revision}",
                "message": r.message,
            }
            for r in sorted(reps, key=lambda r: r.id)
        ],
    }


def revision_json(r: RevisionRecord) -> dict[str, Any]:
    return {
        "workload": r.workload,
        "kind": r.kind,
        "revision": f"r{r.number}",
        "number": r.number,
        "contentHash": r.content_hash,
        "author": r.author,
        "message": r.message,
        "createdAt": r.created_at.isoformat(),
        "placement": r.placement,
        "costUSD": round(sum(float(a.get("costUSD", 0.0)) for a in r.placement), 6),
    }


def history(store: HistoryReader, workload: str) -> list[dict[str, Any]]:
    return [revision_json(r) for r in store.history(workload)]


def rollback(
    store: RollbackRepository, workload: str, to: int | None, author: str, on_change: Callable[[], None]
) -> dict[str, Any]:
    record = store.rollback(workload, to=to, author=author)
    on_change()
    return revision_json(record)


def events(store: EventReader, workload: str | None, limit: int) -> list[dict[str, Any]]:
    """Events as `polycloud events --json` and `/events` show them (without the store's ids)."""
    return [
        {k: v for k, v in e.to_json().items() if k != "id"}
        for e in store.events(workload=workload, limit=limit)
    ]
