"""The fleet at a glance, for the dashboard: clusters where they are and how healthy, services and their
replicas, and the flows between them (users → clusters, datasets → clusters). Read-only.

Health of a cluster, from the replicas the controller observed there:
`down` — replicas are wanted there and none is ready; `degraded` — fewer ready than wanted, or more than
5 % of its answers were 5xx over the last load window; `up` — all ready; `idle` — nothing runs there.
Traffic flows follow the cost model's rule (each source is served by its nearest active cluster, by RTT)
over the active clusters that have a ready replica (else any cluster with one: a standby that took
over), which is where the gateway sends requests, so an arc moves when a cluster goes down.

LLM services (`spec.protocol: openai`) also show their tokens: per second (prompt and completion) from
the gateways' last load reports (each carries the tokens of its one-second window), and today's totals
(UTC) from the hourly `token_usage` rows. Their latency figures (`p50Ms`, `p99Ms`) are times to first
token: that is what the gateway reports as the latency of an LLM answer (`gateway/llm.py`'s
`responsive_s`; the whole answer's time when it was not streamed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from polycloud.catalog import Catalog
from polycloud.exchange import LOAD_REPORT_INTERVAL_S, LoadReport
from polycloud.placement.sites import Site, build_site, rtt_ms, traffic_point
from polycloud.services.inspecting import control_plane, held_revisions
from polycloud.spec.models import Cluster, TrafficSource
from polycloud.state import ReplicaRecord, TokenRecord, WorkloadState
from polycloud.state.loads import TokensServed
from polycloud.state.repositories import DocumentReader, EventFeed
from polycloud.state.repositories_services import OverviewReader

LOAD_WINDOW_S = 5.0
"""Load reports older than this are stale (gateways report every second)."""
DEGRADED_ERROR_RATE = 0.05


@dataclass
class Load:
    """Answers per second, 5xx share and latency of some (service, cluster) set, summed over gateways."""

    rps: float = 0.0
    errors: float = 0.0
    weighted_p50: float = 0.0
    weighted_p99: float = 0.0
    prompt_tokens: int = 0
    """LLM tokens of the gateways' last windows (one each, `LOAD_REPORT_INTERVAL_S` long)."""
    completion_tokens: int = 0
    weighted_itl: float = 0.0
    """Inter-token latency (ms) × the completion tokens it was measured over."""
    itl_tokens: int = 0

    def add(self, r: LoadReport) -> None:
        self.rps += r.rps
        self.errors += r.rps * r.error_rate
        self.weighted_p50 += r.p50_ms * r.rps
        self.weighted_p99 += r.p99_ms * r.rps
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        if r.inter_token_ms > 0:
            self.weighted_itl += r.inter_token_ms * r.completion_tokens
            self.itl_tokens += r.completion_tokens

    def to_json(self) -> dict[str, float]:
        share = (lambda v: round(v / self.rps, 3)) if self.rps > 0 else (lambda v: 0.0)
        return {
            "rps": round(self.rps, 2),
            "errorRate": round(self.errors / self.rps, 4) if self.rps > 0 else 0.0,
            "p50Ms": share(self.weighted_p50),
            "p99Ms": share(self.weighted_p99),
            "promptTokensPerS": round(self.prompt_tokens / LOAD_REPORT_INTERVAL_S, 1),
            "completionTokensPerS": round(self.completion_tokens / LOAD_REPORT_INTERVAL_S, 1),
            "interTokenMs": round(self.weighted_itl / self.itl_tokens, 3) if self.itl_tokens else 0.0,
        }


@dataclass
class Tally:
    desired: int = 0
    ready: int = 0
    replicas: int = 0
    load: Load = field(default_factory=Load)


def health(t: Tally) -> str:
    if t.desired == 0 and t.replicas == 0:
        return "idle"
    if t.ready == 0:
        return "down"
    if t.ready < t.desired or (t.load.rps > 0 and t.load.errors / t.load.rps > DEGRADED_ERROR_RATE):
        return "degraded"
    return "up"


def overview(store: OverviewReader, catalog: Catalog, now: datetime | None = None) -> dict[str, Any]:
    """The whole fleet's overview (every project's; `visible` narrows it for a caller)."""
    now = now or datetime.now(UTC)
    sites = _sites(store, catalog)
    workloads = store.current()
    replicas: dict[tuple[str, str], list[ReplicaRecord]] = defaultdict(list)
    for r in store.replicas():
        replicas[(r.workload, r.cluster)].append(r)
    loads: dict[tuple[str, str], Load] = defaultdict(Load)
    for report in store.load(LOAD_WINDOW_S):
        loads[(report.service, report.cluster)].add(report)
    rollouts = {r.service: r.to_json() for r in store.active_rollouts()}
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    served = store.tokens_served(today)
    clusters = {name: Tally() for name in sites}
    services = [
        _service(w, replicas, loads, clusters, rollouts.get(w.name), sites, catalog, served)
        for w in workloads
        if w.kind == "Service"
    ]
    datasets = {d.name: d.spec.get("spec", {}) for d in store.documents("Dataset")}
    return {
        "at": now.isoformat(),
        # A replica may name a cluster without a (valid) document: it is counted, not drawn.
        "clusters": [_cluster(sites[name], tally) for name, tally in clusters.items() if name in sites],
        "services": services,
        "jobs": [_job(w) for w in workloads if w.kind == "Job"],
        "flows": [f for s in services for f in s.pop("_flows")] + _data_flows(workloads, datasets),
        "lastEventId": store.last_event_id(),
        "controlPlane": control_plane(store, host=""),  # pids mean nothing in a browser
    }


def events_after(store: EventFeed, after_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """Events stored after `after_id`, oldest first, as the dashboard shows them."""
    return [e.to_json() for e in store.events_after(after_id, limit=limit)]


def visible(view: dict[str, Any], who: TokenRecord) -> dict[str, Any]:
    """`view` as `who` may see it: a project token sees its project's services, jobs and flows only.

    Clusters are shared infrastructure and stay visible, with their fleet-wide health."""
    if who.project is None:
        return view
    services = [s for s in view["services"] if s["project"] == who.project]
    jobs = [j for j in view["jobs"] if j["project"] == who.project]
    names = {w["name"] for w in services + jobs}
    flows = [f for f in view["flows"] if f["workload"] in names]
    return {**view, "services": services, "jobs": jobs, "flows": flows}


def workload_names(view: dict[str, Any]) -> set[str]:
    """Names of the services and jobs in `view`."""
    return {s["name"] for s in view["services"]} | {j["name"] for j in view["jobs"]}


def _sites(store: DocumentReader, catalog: Catalog) -> dict[str, Site]:
    sites = {}
    for doc in store.documents("Cluster"):
        try:
            sites[doc.name] = build_site(Cluster.model_validate(doc.spec), catalog)
        except ValidationError:  # recorded by an older release; show nothing rather than fail the page
            continue
    return sites


def _cluster(site: Site, t: Tally) -> dict[str, Any]:
    return {
        "name": site.name,
        "provider": site.provider,
        "region": site.region,
        "lat": site.point.lat,
        "lon": site.point.lon,
        "jurisdiction": site.jurisdiction,
        "health": health(t),
        "desired": t.desired,
        "ready": t.ready,
        "replicas": t.replicas,
        **t.load.to_json(),
    }


def _service(
    w: WorkloadState,
    replicas: dict[tuple[str, str], list[ReplicaRecord]],
    loads: dict[tuple[str, str], Load],
    clusters: dict[str, Tally],
    rollout: dict[str, Any] | None,
    sites: dict[str, Site],
    catalog: Catalog,
    served: list[TokensServed],
) -> dict[str, Any]:
    spec, total = w.spec.get("spec", {}), Load()
    tokens = {t.cluster: t for t in served if t.service == w.name}
    placed = [(str(a["cluster"]), str(a["role"]), int(a["replicas"])) for a in w.placement]
    placed += [
        (c, reps[0].role, 0)
        for (s, c), reps in sorted(replicas.items())
        if s == w.name and c not in {p[0] for p in placed}
    ]
    rows: list[dict[str, Any]] = []
    for cluster, role, desired in placed:
        reps = replicas.get((w.name, cluster), [])
        t = Tally(desired, sum(r.state == "ready" for r in reps), len(reps), loads[(w.name, cluster)])
        _add(clusters.setdefault(cluster, Tally()), t)
        _add_load(total, t.load)
        rows.append(
            {
                "cluster": cluster,
                "role": role,
                "desired": desired,
                "ready": t.ready,
                "health": health(t),
                "replicas": [
                    {"id": r.id, "state": r.state, "revision": f"r{r.revision}", "message": r.message}
                    for r in sorted(reps, key=lambda r: r.id)
                ],
                **t.load.to_json(),
                "tokensToday": _tokens_json([tokens[cluster]] if cluster in tokens else []),
            }
        )
    ready = [r for r in rows if r["ready"] > 0 and r["cluster"] in sites]
    # The gateway prefers active clusters; standby and burst ones serve only when no active one can.
    serving = [r["cluster"] for r in ready if r["role"] == "active"] or [r["cluster"] for r in ready]
    return {
        "name": w.name,
        "project": w.project,
        "team": w.spec.get("metadata", {}).get("labels", {}).get("team"),
        "revision": f"r{w.number}",
        "pattern": spec.get("pattern", "single"),
        "protocol": spec.get("protocol", "oip-v2"),
        "monthlyUSD": round(sum(float(a.get("costUSD", 0.0)) for a in w.placement), 2),
        "rollout": rollout,
        "held": [f"r{n}" for n in held_revisions(w.spec, w.number)],
        "clusters": rows,
        **total.to_json(),
        # Every cluster's tokens today, also of one the service has since left.
        "tokensToday": _tokens_json(list(tokens.values())),
        "_flows": _traffic_flows(w.name, spec.get("traffic", []), serving, total.rps, sites, catalog),
    }


def _tokens_json(served: list[TokensServed]) -> dict[str, int]:
    return {"prompt": sum(t.prompt for t in served), "completion": sum(t.completion for t in served)}


def _add(into: Tally, t: Tally) -> None:
    into.desired += t.desired
    into.ready += t.ready
    into.replicas += t.replicas
    _add_load(into.load, t.load)


def _add_load(into: Load, load: Load) -> None:
    into.rps += load.rps
    into.errors += load.errors
    into.weighted_p50 += load.weighted_p50
    into.weighted_p99 += load.weighted_p99
    into.prompt_tokens += load.prompt_tokens
    into.completion_tokens += load.completion_tokens
    into.weighted_itl += load.weighted_itl
    into.itl_tokens += load.itl_tokens


def _traffic_flows(
    service: str,
    traffic: list[dict[str, Any]],
    serving: list[str],
    rps: float,
    sites: dict[str, Site],
    catalog: Catalog,
) -> list[dict[str, Any]]:
    flows = []
    for entry in traffic:
        source = TrafficSource.model_validate(entry)
        point = traffic_point(source, catalog, sites)
        to = min(serving, key=lambda c: rtt_ms(point, sites[c].point, catalog)) if serving else None
        flows.append(
            {
                "kind": "traffic",
                "workload": service,
                "from": {
                    "label": source.region or f"{point.lat:.1f},{point.lon:.1f}",
                    "lat": point.lat,
                    "lon": point.lon,
                },
                "to": to,
                "share": source.share,
                "rps": round(rps * source.share, 2),
                "rttMs": round(rtt_ms(point, sites[to].point, catalog), 1) if to else None,
            }
        )
    return flows


def _data_flows(workloads: list[WorkloadState], datasets: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    flows = []
    for w in workloads:
        reads = w.spec.get("spec", {}).get("reads", [])
        active = [str(a["cluster"]) for a in w.placement if a["role"] == "active"]
        for read in reads:
            dataset = datasets.get(str(read.get("dataset")))
            if dataset is None:
                continue
            home = str(dataset.get("cluster"))
            for cluster in active:
                if cluster != home:
                    flows.append(
                        {
                            "kind": "data",
                            "workload": w.name,
                            "dataset": read["dataset"],
                            "from": home,
                            "to": cluster,
                            "gbPerMonth": read.get("gbPerMonth", dataset.get("sizeGB")),
                        }
                    )
    return flows


def _job(w: WorkloadState) -> dict[str, Any]:
    return {
        "name": w.name,
        "project": w.project,
        "revision": f"r{w.number}",
        "clusters": [str(a["cluster"]) for a in w.placement],
    }
