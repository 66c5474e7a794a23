"""`polycloud slo` and `polycloud incidents`: service level objectives and incidents of the fleet."""

from typing import Annotated, Any, Literal

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings

SLO_EXAMPLE = "Example: polycloud slo --json"
INCIDENTS_EXAMPLE = "Example: polycloud incidents --state open --json"


def register(app: typer.Typer) -> None:
    """Add the `slo` and `incidents` commands."""
    app.command(name="slo", epilog=SLO_EXAMPLE)(slo)
    app.command(name="incidents", epilog=INCIDENTS_EXAMPLE)(incidents)


def _percent(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _row(service: str, where: str, target: str, s: dict[str, Any]) -> list[str]:
    burn = s["burnRates"]
    return [
        service,
        where,
        target,
        f"{s['requests']:.0f}",
        _percent(s["availability"]),
        _percent(s["budgetLeft"], 1),
        f"{burn['1h']:.2f}× / {burn['5m']:.2f}×",
        f"{burn['6h']:.2f}× / {burn['30m']:.2f}×",
        ", ".join(s["alerts"]) or "-",
        f"{s['p99Ms']:.0f} ms",
        _percent(s["probe"]["availability"], 1),
    ]


@friendly
def slo(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each service's SLO, overall and per cluster: availability, error budget left, burn rates over the
    SRE workbook's windows (1 h / 5 min page at 14.4×, 6 h / 30 min ticket at 6×), p99 and probes."""
    client = connect(settings(), start=False, say=err.print)
    report = client.slo()
    if as_json:
        print_json(report)
        return
    if not report["services"]:
        out.print("no services yet")
        return
    from rich.table import Table

    table = Table(title="service level objectives")
    columns = ("service", "scope", "objective", "requests", "available", "budget left", "burn 1h/5m")
    for col in (*columns, "burn 6h/30m", "alerts", "p99 (1 h)", "probes"):
        table.add_column(col)
    for s in report["services"]:
        o = s["objective"]
        target = f"{o['availability'] * 100:g}% / {o['windowDays']} d" + (
            f", p99 ≤ {o['p99Ms']:g} ms" if o["p99Ms"] else ""
        )
        table.add_row(*_row(s["service"], "overall", target, s["overall"]))
        for c in s["clusters"]:
            table.add_row(*_row("", c["cluster"], "", c))
    out.print(table)
    for alert in report["alerts"]:
        where = f" in {alert['cluster']}" if alert.get("cluster") else ""
        err.print(f"[bold red]{alert['severity']}[/]: {alert['service']}{where} burns its error budget")


@friendly
def incidents(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    state: Annotated[
        Literal["open", "resolved"] | None, typer.Option("--state", help="Only open or resolved incidents.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=500, help="Incidents to list, newest first.")
    ] = 20,
) -> None:
    """Incidents (failovers, automatic rollbacks, SLO burn alerts, budget alerts), newest first, each
    with the timeline of its events, ready for a post-incident review."""
    client = connect(settings(), start=False, say=err.print)
    found = client.incidents(state, limit)
    if as_json:
        print_json({"incidents": found})
        return
    if not found:
        out.print("no incidents")
        return
    for i in found:
        colour = "red" if i["state"] == "open" else "green"
        out.print(f"[bold]#{i['id']}[/] [{colour}]{i['state']}[/] {i['kind']}: {i['title']}")
        out.print(
            f"    opened {i['openedAt']}" + (f", resolved {i['resolvedAt']}" if i["resolvedAt"] else "")
        )
        for e in i["timeline"]:
            where = "/".join(x for x in (e["workload"], e["cluster"]) if x)
            out.print(f"    {e['time']}  {e['reason']:<20} {where:<24} {e['message']}", markup=False)
