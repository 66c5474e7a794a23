"""`polycloud drill outage|brownout|errors|blackhole CLUSTER` (a fault under real load) and
`drill preempt JOB`."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings

if TYPE_CHECKING:
    from polycloud.drills import DrillKind, DrillReport

Cluster = Annotated[
    str, typer.Argument(help="The cluster to fault, as in `polycloud status`.", show_default=False)
]
Service = Annotated[
    str | None, typer.Option("--service", "-s", help="Service to load (default: the first one on CLUSTER).")
]
Rps = Annotated[float, typer.Option("--rps", help="Requests per second, on a fixed (open-loop) schedule.")]
Duration = Annotated[float, typer.Option("--duration", help="Seconds of load.")]
FaultAt = Annotated[
    float | None, typer.Option("--fault-at", help="Seconds in when the fault starts (default: duration/3).")
]
ClearAt = Annotated[
    float | None, typer.Option("--clear-at", help="Seconds in when it is cleared (default: 2×duration/3).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]

drill_app = typer.Typer(
    help="Run load through the gateway while a cluster fails, and measure what clients saw.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `drill` command group."""
    app.add_typer(drill_app, name="drill", epilog="Example: polycloud drill outage aws-use1 --rps 200")


@drill_app.command(epilog="Example: polycloud drill outage aws-use1 --rps 200 --duration 15")
@friendly
def outage(
    cluster: Cluster,
    service: Service = None,
    rps: Rps = 100.0,
    duration: Duration = 10.0,
    fault_at: FaultAt = None,
    clear_at: ClearAt = None,
    as_json: AsJson = False,
) -> None:
    """Take CLUSTER down (every replica stops) mid-load, then bring it back."""
    _run("outage", cluster, service, rps, duration, fault_at, clear_at, as_json)


@drill_app.command(epilog="Example: polycloud drill brownout aws-use1 --latency-ms 300 --rps 200")
@friendly
def brownout(
    cluster: Cluster,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Delay added to every answer.")],
    service: Service = None,
    rps: Rps = 100.0,
    duration: Duration = 10.0,
    fault_at: FaultAt = None,
    clear_at: ClearAt = None,
    as_json: AsJson = False,
) -> None:
    """Slow every answer of CLUSTER down by --latency-ms mid-load, then restore it."""
    _run("brownout", cluster, service, rps, duration, fault_at, clear_at, as_json, latency_ms=latency_ms)


@drill_app.command(epilog="Example: polycloud drill errors aws-use1 --rate 0.5 --duration 15")
@friendly
def errors(
    cluster: Cluster,
    rate: Annotated[float, typer.Option("--rate", help="Fraction of inference requests answered 500.")],
    service: Service = None,
    rps: Rps = 100.0,
    duration: Duration = 10.0,
    fault_at: FaultAt = None,
    clear_at: ClearAt = None,
    as_json: AsJson = False,
) -> None:
    """Make CLUSTER fail a fraction --rate of inference requests mid-load, then heal it."""
    _run("errors", cluster, service, rps, duration, fault_at, clear_at, as_json, error_rate=rate)


@drill_app.command(epilog="Example: polycloud drill blackhole aws-use1 --rps 200 --duration 15")
@friendly
def blackhole(
    cluster: Cluster,
    service: Service = None,
    rps: Rps = 100.0,
    duration: Duration = 10.0,
    fault_at: FaultAt = None,
    clear_at: ClearAt = None,
    as_json: AsJson = False,
) -> None:
    """Freeze every replica of CLUSTER mid-load (SIGSTOP: connections still open, nothing answers),
    then resume them. The rto counts requests that waited on CLUSTER before another answered."""
    _run("blackhole", cluster, service, rps, duration, fault_at, clear_at, as_json)


@drill_app.command(epilog="Example: polycloud drill preempt train --grace 10")
@friendly
def preempt(
    job: Annotated[str, typer.Argument(help="The running job to preempt.", show_default=False)],
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="Seconds between SIGTERM and SIGKILL (time to checkpoint)."),
    ] = 5.0,
) -> None:
    """Preempt JOB like a spot reclaim: SIGTERM now, SIGKILL after --grace; the controller recovers it."""
    client = connect(settings(), start=False, say=err.print)
    try:
        answer = client.preempt_job(job, grace)
    finally:
        client.close()
    out.print(
        f"{job}: preempted on {answer['cluster']} (SIGKILL after {grace:g} s); see `polycloud jobs status`"
    )


def _run(
    kind: "DrillKind",
    cluster: str,
    service: str | None,
    rps: float,
    duration: float,
    fault_at: float | None,
    clear_at: float | None,
    as_json: bool,
    **fault: Any,
) -> None:
    from polycloud.drills import DrillPlan, drill

    plan = DrillPlan.create(
        kind,
        cluster,
        rps=rps,
        duration_s=duration,
        fault_at_s=fault_at,
        clear_at_s=clear_at,
        service=service,
        **fault,
    )
    client = connect(settings(), start=False, say=err.print)
    try:
        if as_json:
            report = drill(plan, client)
        else:
            with err.status(f"{kind} drill on {cluster}: {rps:g} rps for {duration:g} s…"):
                report = drill(plan, client)
    finally:
        client.close()
    if as_json:
        print_json(report.to_json())
    else:
        show(report)


def _ms(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:,.1f} ms"


def show(report: "DrillReport") -> None:
    """The compact human summary of a drill."""
    from rich.table import Table

    rows = report.to_json()
    title = f"{report.kind} drill: {report.service} with {report.cluster} faulted"
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    failed = f"{report.failed}" + (f" ({report.retryable} retryable 429/503)" if report.retryable else "")
    table.add_row("requests", f"{report.requests} at {report.rps:g} rps over {report.duration_s:g} s")
    table.add_row("failed", f"[{'red' if report.failed else 'green'}]{failed}[/]")
    table.add_row(
        "latency",
        f"p50 {_ms(report.p50_ms, '-')}, p99 {_ms(report.p99_ms, '-')}"
        f" (during the fault: p99 {_ms(report.fault_p99_ms, '-')})",
    )
    cleared = "never" if report.cleared_at_s is None else f"{report.cleared_at_s:.2f} s"
    call = "" if report.inject_call_ms is None else f" (injection call {report.inject_call_ms:.0f} ms)"
    table.add_row("fault", f"at {report.fault_at_s:.2f} s{call}, cleared at {cleared}")
    table.add_row("rto", _ms(report.rto_ms, f"null: {report.rto_note}"))
    if report.faulted_share is not None:
        table.add_row("during fault", f"{report.faulted_share:.1%} answered by {report.cluster}")
    table.add_row("recovery", _ms(report.recovery_ms, "null: the cluster did not serve again in the drill"))
    table.add_row("by cluster", ", ".join(f"{k} {v}" for k, v in rows["byCluster"].items()))
    table.add_row("status codes", ", ".join(f"{k}: {v}" for k, v in rows["statusCodes"].items()))
    out.print(table)
