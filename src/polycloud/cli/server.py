"""`polycloud server` (one control-plane server) and `polycloud server init` (prepare a database once)."""

import sys

import typer

from polycloud.cli.common import friendly, out, settings
from polycloud.homefiles import RunInfo

server_app = typer.Typer(
    help="Control-plane servers for several machines (PostgreSQL): any number, one leader.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")


@server_app.callback(
    epilog="Example: POLYCLOUD_DATABASE_URL=postgresql+psycopg://pc@db:5432/polycloud "
    "POLYCLOUD_MASTER_KEY=... polycloud server"
)
@friendly
def serve(ctx: typer.Context) -> None:
    """Run one control-plane server until Ctrl-C: the whole API; the reconciler, jobs, rollouts,
    autoscaling, failover, accounting and observer run only while it holds the leader lease."""
    if ctx.invoked_subcommand is not None:
        return
    s = settings()
    # The server stack (uvicorn, FastAPI, SQLAlchemy) is imported here, not at the CLI's start.
    from polycloud.server.standalone import StandaloneServer
    from polycloud.state.connecting import mask_url

    def ready(info: RunInfo, server_id: str) -> None:
        out.print(f"server {server_id} (pid {info.pid}) on {mask_url(s.resolved_database_url)}")
        out.print(f"  API      {info.api_url}/api/v1")
        sys.stdout.flush()

    StandaloneServer(s, on_ready=ready).serve()


@server_app.command(
    "init",
    epilog="Example: POLYCLOUD_DATABASE_URL=postgresql+psycopg://pc@db:5432/polycloud polycloud server init",
)
@friendly
def init() -> None:
    """Prepare the database once: migrate it and create the first admin token (printed once)."""
    s = settings()
    from polycloud.server.standalone import init_database

    path, token = init_database(s)
    if token is None:
        out.print("database ready (already initialised: no new admin token)")
        return
    out.print(f"database ready; the first admin token (shown once, also in {path}):")
    out.print(token)
