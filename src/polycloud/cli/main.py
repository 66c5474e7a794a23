"""Entry point of the `polycloud` command: builds the Typer app from one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from polycloud.cli import (
    audit,
    catalog,
    certs,
    cost,
    dashboard,
    demo,
    drill,
    export,
    gateway,
    jobs,
    keys,
    observe,
    planning,
    policy,
    rollout,
    runtime,
    secrets,
    server,
    tokens,
)
from polycloud.cli.common import connect_to
from polycloud.homefiles import keep_private

app = typer.Typer(
    name="polycloud",
    help="Run AI inference and training across clouds and on-prem sites as one fleet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(epilog="Example: polycloud --server https://polycloud.example.com:8700 status")
def connection(
    server: Annotated[
        str | None,
        typer.Option(
            "--server", help="URL of a remote control plane (else $POLYCLOUD_SERVER, else this home's)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="API token (else $POLYCLOUD_TOKEN, else this home's admin token)."),
    ] = None,
) -> None:
    """Run AI inference and training across clouds and on-prem sites as one fleet."""
    connect_to(server, token)


for module in (
    catalog,
    planning,
    runtime,
    server,
    gateway,
    demo,
    drill,
    export,
    policy,
    rollout,
    jobs,
    secrets,
    certs,
    keys,
    tokens,
    audit,
    cost,
    observe,
    dashboard,
):
    module.register(app)


def run() -> None:
    """Console-script entry point (also `python -m polycloud.cli.main`, as a background `up` starts)."""
    keep_private()  # the home, and whatever replicas, gateways and jobs started from here write in it
    app()


if __name__ == "__main__":
    run()
