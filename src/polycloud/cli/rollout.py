"""`polycloud rollout status|pause|resume|abort`: watch and steer canary rollouts."""

from typing import Annotated, Any

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings

rollout_app = typer.Typer(
    help="Watch and steer canary rollouts (a Service's `rollout` steps traffic to a new revision).",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(help="Service name.", show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the `rollout` command group."""
    app.add_typer(rollout_app, name="rollout", epilog="Example: polycloud rollout status species")


def describe(r: dict[str, Any]) -> str:
    """One line: where a rollout stands."""
    figures = r.get("figures") or {}
    canary, base = figures.get("canary"), figures.get("baseline")
    seen = ""
    if canary:
        seen = (
            f"; canary {canary['attempts']} attempts, {canary['errorRate']:.1%} errors, "
            f"p99 {canary['p99Ms']:.0f} ms"
        )
        if base:
            seen += f" (baseline {base['errorRate']:.1%}, p99 {base['p99Ms']:.0f} ms)"
    where = f"step {r['step']}/{len(r['steps'])} at {r['weight']}%"
    return f"{r['service']} {r['baselineRevision']} → {r['canaryRevision']}: {r['state']}, {where}{seen}"


@rollout_app.command(epilog="Example: polycloud rollout status species --json")
@friendly
def status(
    name: Annotated[str | None, typer.Argument(help="Service name (default: every service).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rollouts to list, newest first.")] = 10,
) -> None:
    """Show canary rollouts, newest first: state, step, traffic share and how the canary fares."""
    client = connect(settings(), start=False, say=err.print)
    found = client.rollouts(name, limit=limit)
    if as_json:
        print_json({"rollouts": found})
        return
    if not found:
        out.print("no canary rollouts yet" + (f" of {name}" if name else ""))
        return
    from rich.table import Table

    table = Table(title="canary rollouts")
    for col in ("service", "revisions", "state", "step", "traffic", "canary", "baseline", "message"):
        table.add_column(col)
    for r in found:
        figures = r.get("figures") or {}
        table.add_row(
            r["service"],
            f"{r['baselineRevision']} → {r['canaryRevision']}",
            r["state"],
            f"{r['step']}/{len(r['steps'])}",
            f"{r['weight']}%",
            _figures(figures.get("canary")),
            _figures(figures.get("baseline")),
            r["message"],
        )
    out.print(table)


def _figures(f: dict[str, Any] | None) -> str:
    if not f:
        return "-"
    return f"{f['attempts']} req, {f['errorRate']:.1%} err, p99 {f['p99Ms']:.0f} ms"


def _control(name: str, action: str) -> None:
    client = connect(settings(), start=False, say=err.print)
    out.print(describe(client.control_rollout(name, action)))


@rollout_app.command(epilog="Example: polycloud rollout pause species")
@friendly
def pause(name: Name) -> None:
    """Hold the canary at its current share of traffic (it is still rolled back if it fails)."""
    _control(name, "pause")


@rollout_app.command(epilog="Example: polycloud rollout resume species")
@friendly
def resume(name: Name) -> None:
    """Continue a paused rollout; the current step's bake starts again."""
    _control(name, "resume")


@rollout_app.command(epilog="Example: polycloud rollout abort species")
@friendly
def abort(name: Name) -> None:
    """Stop the rollout and restore the baseline revision (recorded as a new revision)."""
    _control(name, "abort")
