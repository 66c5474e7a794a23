"""`polycloud flags ...`: feature flags between applies: list, history, the kill switch, rollback.

Flags are declared as FeatureFlag documents and applied with the fleet (docs/flags.md); these commands
set one flag at once, as a new version the gateways follow within a route refresh.
"""

from typing import Annotated, Any

import typer

from polycloud.cli.common import connect, err, friendly, out, print_json, settings

flags_app = typer.Typer(
    help="Feature flags: list, versions, the kill switch (disable), rollback.",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(help="The FeatureFlag's name.", show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the `flags` command group."""
    app.add_typer(flags_app, name="flags", epilog="Example: polycloud flags disable new-ranker")


@flags_app.command("list", epilog="Example: polycloud flags list --json")
@friendly
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the live flags with their state, default variant, version and the shares of their variants
    in the gateways' evaluations of the last 15 minutes."""
    rows = connect(settings(), start=False, say=err.print).flags()
    if as_json:
        print_json(rows)
        return
    columns = ["name", "state", "default", "variants", "version", "changed by", "shares (15 min)"]
    _table("feature flags", columns, rows)


@flags_app.command(epilog="Example: polycloud flags history new-ranker")
@friendly
def history(name: Name, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every version of a flag, oldest first."""
    rows = connect(settings(), start=False, say=err.print).flag_history(name)
    if as_json:
        print_json(rows)
        return
    _table(f"versions of {name}", ["version", "state", "default", "author", "message", "time"], rows)


@flags_app.command(epilog="Example: polycloud flags disable new-ranker")
@friendly
def disable(name: Name) -> None:
    """The kill switch: every evaluation answers DISABLED and callers use their code default."""
    _said(connect(settings(), start=False, say=err.print).set_flag_state(name, "DISABLED"))


@flags_app.command(epilog="Example: polycloud flags enable new-ranker")
@friendly
def enable(name: Name) -> None:
    """Enable a disabled flag again."""
    _said(connect(settings(), start=False, say=err.print).set_flag_state(name, "ENABLED"))


@flags_app.command(epilog="Example: polycloud flags rollback new-ranker --to 2")
@friendly
def rollback(
    name: Name,
    to: Annotated[
        int | None, typer.Option("--to", help="The version to restore (default: the previous).")
    ] = None,
) -> None:
    """Make an earlier version of a flag current again, as a new version."""
    _said(connect(settings(), start=False, say=err.print).rollback_flag(name, to))


def _said(version: dict[str, Any]) -> None:
    out.print(f"{version['name']}: v{version['version']}, {version['state']} ({version['message']})")
    err.print("the gateways follow within a route refresh; the next apply sets the flag as its file says")


def _table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for r in rows:
        cells = {
            "name": r["name"],
            "state": str(r["state"]),
            "default": str(r["defaultVariant"]),
            "variants": ", ".join(r.get("variants", [])),
            "version": f"v{r['version']}",
            "changed by": r["author"],
            "author": r["author"],
            "message": r["message"],
            "time": r["createdAt"],
            "shares (15 min)": _shares(r.get("evaluations")),
        }
        table.add_row(*(cells[c] for c in columns))
    out.print(table)


def _shares(evaluations: dict[str, Any] | None) -> str:
    """`on 30% · off 70%` of the outcomes evaluated (an error by its code), or "—" without evaluations."""
    if not evaluations or not evaluations.get("total"):
        return "—"
    named = [
        (s["error"] or s["variant"] or "no variant", s["share"]) for s in evaluations["shares"] if s["count"]
    ]
    return " · ".join(f"{name} {share:.0%}" for name, share in named)
