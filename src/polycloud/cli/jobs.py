"""`polycloud jobs status|logs|cancel`: managed training jobs of the running control plane."""

import sys
from typing import Annotated, Any

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings

Name = Annotated[
    str, typer.Argument(help="The job's name, as in `polycloud jobs status`.", show_default=False)
]

jobs_app = typer.Typer(
    help="Managed training jobs: where they run, what they cost, their output.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the `jobs` command group."""
    app.add_typer(jobs_app, name="jobs", epilog="Example: polycloud jobs status --json")


@jobs_app.command(epilog="Example: polycloud jobs status --json")
@friendly
def status(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Show every job: state, cluster, attempts, checkpoint bytes carried and cost so far."""
    client = connect(settings(), start=False, say=err.print)
    try:
        data = client.jobs_status()
    finally:
        client.close()
    if as_json:
        print_json(data)
        return
    show(data["jobs"])


def show(jobs: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="jobs")
    for col in ("job", "state", "cluster", "attempts", "checkpoint bytes", "cost"):
        table.add_column(col, justify="right" if col in ("checkpoint bytes", "cost") else "left")
    for job in jobs:
        attempts = "\n".join(f"{a['cluster']} {a['state']} pid {a['pid']}" for a in job["attempts"]) or "-"
        table.add_row(
            job["name"],
            job["state"],
            job["cluster"] or "-",
            attempts,
            f"{job['checkpointBytesMoved']:,}",
            f"${job['costUSD']:.6f}",
        )
    out.print(table)


@jobs_app.command(epilog="Example: polycloud jobs logs train --tail 20")
@friendly
def logs(
    name: Name,
    tail: Annotated[int, typer.Option("--tail", "-n", help="Lines to show (0: all).")] = 100,
) -> None:
    """Show a job's output, every attempt's in turn."""
    client = connect(settings(), start=False, say=err.print)
    try:
        lines = client.job_logs(name, tail)
    finally:
        client.close()
    sys.stdout.write("".join(f"{line}\n" for line in lines))


@jobs_app.command(epilog="Example: polycloud jobs cancel train")
@friendly
def cancel(name: Name) -> None:
    """Cancel a job: it gets SIGTERM, then SIGKILL after a grace period, and is not restarted."""
    client = connect(settings(), start=False, say=err.print)
    try:
        client.cancel_job(name)
    finally:
        client.close()
    out.print(f"{name}: cancelled")
