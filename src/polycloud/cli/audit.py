"""`polycloud audit log|verify`: read the tamper-evident audit trail and check its hash chain."""

import json
from typing import Annotated, Any

import typer

from polycloud.cli.common import EXIT_INVALID, connect, err, friendly, out, print_json, settings

audit_app = typer.Typer(
    help="The audit trail: every change, refused request and policy decision, in a hash chain.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `audit` command group."""
    app.add_typer(audit_app, name="audit", epilog="Example: polycloud audit verify")


@audit_app.command(epilog="Example: polycloud audit log --limit 20")
@friendly
def log(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="Entries to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, newest first.")] = False,
) -> None:
    """Show the newest entries, oldest of them first: who did what to what, when, and the outcome."""
    entries = connect(settings(), start=False, say=err.print).audit_log(limit)
    if as_json:
        print_json(entries)
        return
    for e in reversed(entries):
        print(line(e))  # plain: one entry per line whatever the terminal's width


def line(e: dict[str, Any]) -> str:
    """One entry on one line."""
    revision = f" r{e['revision']}" if e["revision"] is not None else ""
    detail = f" {json.dumps(e['detail'], sort_keys=True)}" if e["detail"] else ""
    return (
        f"{e['seq']:>6} {e['time'][:19]} {e['outcome']:6} {e['actor']:20} {e['action']:16} "
        f"{e['target']}{revision}{detail}"
    )


@audit_app.command(epilog="Example: polycloud audit verify")
@friendly
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Check the hash chain; exit 1 and name the first edited, deleted, inserted or reordered entry."""
    verdict = connect(settings(), start=False, say=err.print).verify_audit()
    if as_json:
        print_json(verdict)
    broken = verdict["broken"]
    if broken is None:
        if not as_json:
            out.print(f"audit trail intact: {verdict['entries']} entries, head {verdict['headHash']}")
        return
    from rich.markup import escape

    why = escape(broken["reason"])
    err.print(f"[red]audit trail tampered:[/red] entry {broken['seq']} {broken['kind']} ({why})")
    raise typer.Exit(EXIT_INVALID)
