"""`polycloud secret ...`: set (value from standard input), list, delete, rotate-master."""

import sys
from typing import Annotated

import typer

from polycloud import names
from polycloud.cli.common import connect, err, friendly, out, print_json, settings
from polycloud.errors import UserError

secret_app = typer.Typer(
    help="Secrets, envelope-encrypted in the state store and given to replicas as environment variables.",
    no_args_is_help=True,
)

Name = Annotated[
    str, typer.Argument(help="The secret's name, as services name it in spec.env.", show_default=False)
]
Project = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Only for services of this project (default: fleet-wide)."),
]


def register(app: typer.Typer) -> None:
    """Add the `secret` command group."""
    app.add_typer(
        secret_app,
        name="secret",
        epilog='Example: printf %s "$DB_PASSWORD" | polycloud secret set db-password',
    )


def read_value() -> str:
    """The value from standard input (a hidden prompt on a terminal), without its final newline."""
    if sys.stdin.isatty():
        value: str = typer.prompt("value", hide_input=True)
        return value
    value = sys.stdin.read()
    return value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")


@secret_app.command(
    "set", epilog='Example: printf %s "$DB_PASSWORD" | polycloud secret set db-password --project risk'
)
@friendly
def set_(name: Name, project: Project = None) -> None:
    """Create secret NAME or give it a new value, read from standard input (never from the command line).

    Services that use it are replaced with the new value, one replica at a time.
    """
    names.check_secret_name(name)  # before reading the value or starting a control plane
    if project is not None:
        names.check_project(project)
    value = read_value()
    if not value:
        raise UserError(
            "no value on standard input (pipe it in: printf %s VALUE | polycloud secret set NAME)"
        )
    record = connect(settings(), start=True, say=err.print).set_secret(name, value, project)
    scope = f" in project {record['project']}" if record["project"] else ""
    out.print(f"secret {record['name']}{scope} set (version {record['version']})")


@secret_app.command("list", epilog="Example: polycloud secret list --json")
@friendly
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List secrets: names, projects and versions; values are never shown."""
    rows = connect(settings(), start=False, say=err.print).secrets()
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="secrets")
    for col in ("name", "project", "version", "updated", "master key"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"], r["project"] or "(fleet-wide)", str(r["version"]), r["updatedAt"][:19], r["keyId"]
        )
    out.print(table)


@secret_app.command(epilog="Example: polycloud secret delete db-password --project risk")
@friendly
def delete(name: Name, project: Project = None) -> None:
    """Delete secret NAME; services that use it are blocked (and say so) until it exists again."""
    if project is not None:
        names.check_project(project)
    connect(settings(), start=False, say=err.print).delete_secret(name, project)
    out.print(f"secret {name} deleted")


@secret_app.command("rotate-master", epilog="Example: polycloud secret rotate-master")
@friendly
def rotate_master() -> None:
    """Re-wrap every secret's data key under a new master key, in one transaction (admin only).

    With the key file ($POLYCLOUD_HOME/master.key) a new key replaces it; with POLYCLOUD_MASTER_KEY,
    put the new key first (comma-separated) before running this, and drop the old one afterwards.
    """
    result = connect(settings(), start=False, say=err.print).rotate_master_key()
    out.print(f"re-wrapped {result['rewrapped']} data keys under master key {result['keyId']}")
