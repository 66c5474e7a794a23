"""The lineage graph, read from the kept OpenLineage events, and walks of it (`polycloud lineage`).

Nodes: datasets (Dataset documents and artifacts), models (an artifact whose sha256 is known, one node
per digest, so the job run that wrote it and every rollout that serves it meet there) and runs (job
attempts, and service revisions on a cluster). Edges: a dataset is *read* by a run (cost: the egress of
moving it there), a run *wrote* an artifact (cost: the attempt's compute), a model is *served* by a
rollout. A walk goes both ways from the nodes a name picks, up to a depth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from polycloud.errors import NotFoundError
from polycloud.spec.fleet import TrainedOn
from polycloud.state.lineage import LineageEventRecord
from polycloud.state.repositories_services import LineageRepository

DEFAULT_DEPTH = 6
MAX_DEPTH = 50


Edges = dict[str, list[dict[str, Any]]]
_Index = tuple[int, int, Edges, Edges]


@dataclass
class Graph:
    """Nodes by id and the edges between them."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)
    _index: _Index | None = field(default=None, repr=False, compare=False)
    """(id and length of the edges indexed, edges by source, edges by target): a walk asks for every
    node's edges, so they are indexed once rather than scanned per node."""

    def down(self, node: str) -> list[dict[str, Any]]:
        return self._indexed()[2].get(node, [])

    def up(self, node: str) -> list[dict[str, Any]]:
        return self._indexed()[3].get(node, [])

    def _indexed(self) -> _Index:
        if self._index is None or self._index[:2] != (id(self.edges), len(self.edges)):
            by_from: Edges = {}
            by_to: Edges = {}
            for edge in self.edges:
                by_from.setdefault(edge["from"], []).append(edge)
                by_to.setdefault(edge["to"], []).append(edge)
            self._index = (id(self.edges), len(self.edges), by_from, by_to)
        return self._index


def build(events: list[LineageEventRecord]) -> Graph:
    """The graph of every run the events describe (the latest event of a run gives its facts)."""
    runs: dict[str, list[LineageEventRecord]] = {}
    for event in events:
        runs.setdefault(event.run_id, []).append(event)
    graph = Graph()
    for run_events in runs.values():
        _add_run(graph, run_events)
    return graph


def _add_run(graph: Graph, events: list[LineageEventRecord]) -> None:
    last = events[-1].payload
    facts = dict(last["run"]["facets"].get("polycloud_run", {}))
    for drop in ("_producer", "_schemaURL"):
        facts.pop(drop, None)
    run = f"run:{last['run']['runId']}"
    start = next((e for e in events if e.event_type == "START"), None)
    end = next((e for e in events if e.event_type != "START"), None)
    graph.nodes[run] = {
        **facts,  # first: `kind` below is the node's, not the facet's job/service
        "id": run,
        "kind": "job-run" if facts.get("kind") == "job" else "service-rollout",
        "runId": last["run"]["runId"],
        "job": last["job"]["name"],
        "state": end.event_type if end else "RUNNING",
        "startedAt": start.event_time.isoformat() if start else None,
        "endedAt": end.event_time.isoformat() if end else None,
    }
    for item in last.get("inputs", []):
        source = _add_dataset(graph, item)
        kind = "served" if graph.nodes[source]["kind"] == "model" else "read"
        read = item.get("facets", {}).get("polycloud_read", {})
        graph.edges.append({"from": source, "to": run, "kind": kind, "costUSD": read.get("egressUSD")})
    for item in last.get("outputs", []):
        target = _add_dataset(graph, item)
        graph.edges.append({"from": run, "to": target, "kind": "wrote", "costUSD": facts.get("computeUSD")})


def _add_dataset(graph: Graph, item: dict[str, Any]) -> str:
    facets = item.get("facets", {})
    artifact = facets.get("polycloud_artifact")
    sha = artifact.get("sha256") if artifact else None
    if sha:
        node = f"model:sha256:{sha}"
        known = graph.nodes.setdefault(node, {"id": node, "kind": "model", "sha256": sha, "paths": []})
        if item["name"] not in known["paths"]:
            known["paths"].append(item["name"])
        return node
    node = f"dataset:{item['namespace']}/{item['name']}"
    info = {k: v for k, v in facets.get("polycloud_dataset", {}).items() if not k.startswith("_")}
    version = facets.get("version", {}).get("datasetVersion")
    graph.nodes.setdefault(
        node,
        {
            "id": node,
            "kind": "artifact" if artifact else "dataset",
            "namespace": item["namespace"],
            "name": item["name"],
            "version": version,
            **info,
        },
    )
    return node


def roots(graph: Graph, name: str) -> list[str]:
    """The nodes `name` picks: a model digest, a dataset (or artifact path), or a job or service.

    Raises:
        NotFoundError: Nothing in the lineage has that name.
    """
    if name.startswith("sha256:"):
        found = [n for n in graph.nodes if n == f"model:{name}"]
    else:
        found = [
            n
            for n, node in graph.nodes.items()
            if node.get("job") == name or node.get("name") == name or name in node.get("paths", [])
        ]
    if not found:
        raise NotFoundError(f"no lineage of {name!r}: no run, dataset or model by that name has events yet")
    return found


def walk(graph: Graph, starts: list[str], depth: int) -> tuple[set[str], list[dict[str, Any]]]:
    """Nodes and edges within `depth` steps of `starts`, downstream and upstream."""
    seen, edges = set(starts), []
    for step in (graph.down, graph.up):
        queue = deque((s, 0) for s in starts)
        visited = set(starts)
        while queue:
            node, hops = queue.popleft()
            if hops >= depth:
                continue
            for edge in step(node):
                edges.append(edge)
                other = edge["to"] if step == graph.down else edge["from"]
                if other not in visited:
                    visited.add(other)
                    queue.append((other, hops + 1))
        seen |= visited
    unique = {(e["from"], e["to"], e["kind"]): e for e in edges}
    return seen, list(unique.values())


def lineage(
    store: LineageRepository, name: str, depth: int = DEFAULT_DEPTH, own: set[str] | None = None
) -> dict[str, Any]:
    """`{"query", "depth", "roots", "nodes", "edges"}`: what `polycloud lineage NAME --json` prints.

    `own`: the workloads a project token may see (None: all); runs of others are left out.
    """
    graph = visible(store, own)
    starts = roots(graph, name)
    nodes, edges = walk(graph, starts, max(1, min(depth, MAX_DEPTH)))
    return {
        "query": name,
        "depth": depth,
        "roots": starts,
        "nodes": [graph.nodes[n] for n in sorted(nodes)],
        "edges": edges,
    }


def trained_on(events: list[LineageEventRecord]) -> dict[str, tuple[TrainedOn, ...]]:
    """Model sha256 → the resident datasets read by the completed job runs that wrote it
    (`Fleet.trained_on`: residency follows a model by its bytes, wherever it is copied or served from)."""
    found: dict[str, dict[TrainedOn, None]] = {}
    for event in events:
        payload = event.payload
        facts = payload["run"]["facets"].get("polycloud_run", {})
        if event.event_type != "COMPLETE" or facts.get("kind") != "job":
            continue
        read = [
            TrainedOn(facts.get("workload", payload["job"]["name"]), item["name"], residency)
            for item in payload.get("inputs", [])
            if (residency := item.get("facets", {}).get("polycloud_dataset", {}).get("residency"))
        ]
        for item in payload.get("outputs", []):
            sha = item.get("facets", {}).get("polycloud_artifact", {}).get("sha256")
            if sha and read:
                found.setdefault(sha, {}).update(dict.fromkeys(read))
    return {sha: tuple(reads) for sha, reads in found.items()}


def visible(store: LineageRepository, own: set[str] | None) -> Graph:
    """The whole graph, without the runs of workloads outside `own` (None: nothing hidden)."""
    graph = build(store.lineage_events())
    if own is not None:
        hidden = {n for n, node in graph.nodes.items() if "workload" in node and node["workload"] not in own}
        graph.nodes = {n: node for n, node in graph.nodes.items() if n not in hidden}
        graph.edges = [e for e in graph.edges if e["from"] not in hidden and e["to"] not in hidden]
    return graph


NAME_KINDS = ("dataset", "job", "model", "service", "artifact")
"""The order `names` lists kinds in: the way lineage flows."""


def names(store: LineageRepository, own: set[str] | None = None) -> list[dict[str, Any]]:
    """Every name `lineage` answers for, once each: `{"name", "kind", "runs"}` (runs: how many of the
    graph's runs it names or touches), datasets first, then jobs, models, services and artifacts."""
    graph = visible(store, own)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for node in graph.nodes.values():
        kind = node["kind"]
        if kind in ("job-run", "service-rollout"):
            key = (node["job"], "job" if kind == "job-run" else "service")
        elif kind == "model":
            key = (f"sha256:{node['sha256']}", "model")
        else:
            key = (node["name"], kind)
        entry = found.setdefault(key, {"name": key[0], "kind": key[1], "runs": 0})
        if kind == "model":
            entry["paths"] = node["paths"]
        entry["runs"] += _runs(graph, node)
    return sorted(found.values(), key=lambda e: (NAME_KINDS.index(e["kind"]), e["name"]))


def _runs(graph: Graph, node: dict[str, Any]) -> int:
    if node["kind"] in ("job-run", "service-rollout"):
        return 1
    return len({e["to"] for e in graph.down(node["id"])} | {e["from"] for e in graph.up(node["id"])})
