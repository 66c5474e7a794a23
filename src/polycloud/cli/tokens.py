"""`polycloud token create|list|revoke`: API tokens with a role, an optional project and an expiry."""

from typing import Annotated

import typer

from polycloud import names
from polycloud.cli.common import connect, err, friendly, out, print_json, settings

token_app = typer.Typer(
    help="Manage API tokens (admin): each has a role (viewer < deployer < admin) and may be limited to one "
    "project (metadata.labels.project).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `token` command group."""
    app.add_typer(
        token_app, name="token", epilog="Example: polycloud token create --role deployer --project risk"
    )


@token_app.command(
    epilog="Example: polycloud token create --role deployer --project risk --expires 30d --name ci"
)
@friendly
def create(
    role: Annotated[str, typer.Option("--role", "-r", help="viewer, deployer or admin.", show_default=False)],
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Limit the token to one project (default: every one)."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", "-e", help="Lifetime such as 90m, 12h, 30d, 8w (default: never)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="A label for humans.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the token and its record as JSON.")] = False,
) -> None:
    """Create a token and print it once: only its sha256 is kept, so it cannot be shown again."""
    if project is not None:
        names.check_project(project)
    made = connect(settings(), start=False, say=err.print).create_token(
        role=role, project=project, expires=expires, name=name
    )
    if as_json:
        print_json(made)
        return
    scope = f"project {made['project']}" if made["project"] else "every project"
    until = f"until {made['expiresAt'][:19]}" if made["expiresAt"] else "without expiry"
    err.print(f"token {made['id']} ({made['name']}): {made['role']} of {scope}, {until}")
    err.print("it is shown only now; use it as POLYCLOUD_TOKEN or `Authorization: Bearer <token>`:")
    print(made["token"])


@token_app.command(name="list", epilog="Example: polycloud token list --json")
@friendly
def list_tokens(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tokens (never their secrets): id, name, role, project, expiry and state."""
    rows = connect(settings(), start=False, say=err.print).tokens()
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="API tokens")
    for col in ("id", "name", "role", "project", "created", "expires", "state"):
        table.add_column(col)
    for t in rows:
        expires = (t["expiresAt"] or "never")[:19]
        table.add_row(
            str(t["id"]), t["name"], t["role"], t["project"] or "*", t["createdAt"][:19], expires, t["state"]
        )
    out.print(table)


@token_app.command(epilog="Example: polycloud token revoke 3")
@friendly
def revoke(token_id: Annotated[int, typer.Argument(help="Token id, as `token list` shows it.")]) -> None:
    """Revoke a token for good; requests with it get 401 from then on."""
    done = connect(settings(), start=False, say=err.print).revoke_token(token_id)
    out.print(f"revoked token {done['id']} ({done['name']})")
