"""`polycloud lineage NAME`: where a model came from and where it is served (docs/lineage.md)."""

from typing import Annotated, Any

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings

DEFAULT_DEPTH = 6


def register(app: typer.Typer) -> None:
    """Add the `lineage` command."""
    app.command(epilog="Example: polycloud lineage iris-measurements --depth 4")(lineage)


@friendly
def lineage(
    name: Annotated[
        str, typer.Argument(help="A service, job, dataset or model digest (sha256:...).", show_default=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (nodes and edges).")] = False,
    depth: Annotated[
        int, typer.Option("--depth", min=1, max=50, help="Steps to walk each way.")
    ] = DEFAULT_DEPTH,
) -> None:
    """Walk the lineage both ways: datasets → job runs → model digests → service rollouts → clusters."""
    client = connect(settings(), start=False, say=err.print)
    graph = client.lineage(name, depth)
    if as_json:
        print_json(graph)
        return
    from rich.tree import Tree

    nodes = {n["id"]: n for n in graph["nodes"]}
    for root in graph["roots"]:
        tree = Tree(label(nodes[root]))
        _grow(tree.add("[bold]upstream[/] (where it came from)"), root, graph, nodes, "up", depth, {root})
        _grow(tree.add("[bold]downstream[/] (where it went)"), root, graph, nodes, "down", depth, {root})
        out.print(tree)


def _grow(
    branch: Any, node: str, graph: dict[str, Any], nodes: dict[str, Any], way: str, left: int, seen: set[str]
) -> None:
    if left <= 0:
        return
    near, far = ("to", "from") if way == "up" else ("from", "to")
    for edge in graph["edges"]:
        other = edge[far]
        if edge[near] != node or other in seen or other not in nodes:
            continue
        cost = f", ${edge['costUSD']:.4f}" if edge.get("costUSD") is not None else ""
        child = branch.add(f"[dim]{edge['kind']}{cost}[/] {label(nodes[other])}")
        _grow(child, other, graph, nodes, way, left - 1, seen | {other})


def label(node: dict[str, Any]) -> str:
    """One line about a node of the lineage graph."""
    kind = node["kind"]
    if kind == "model":
        return f"model sha256:{node['sha256'][:16]}… {', '.join(node.get('paths', []))}"
    if kind in ("dataset", "artifact"):
        residency = f", residency {node['residency']}" if node.get("residency") else ""
        return f"{kind} {node['name']} ({node['namespace']}{residency})"
    jurisdiction = node.get("jurisdiction") or "no jurisdiction"
    place = f"{node.get('provider', '?')}/{node.get('region', '?')}, {jurisdiction}"
    where = f"{node.get('cluster', '?')} ({place})"
    times = f"{node.get('startedAt') or '?'} → {node.get('endedAt') or 'now'}"
    if kind == "job-run":
        what = f"job {node['job']} r{node.get('revision')} attempt {node.get('attempt')}"
    else:
        what = f"service {node['job']} r{node.get('revision')}"
    return f"{what} on {where}: {node['state']}, {times}"
