"""Entry point of the `polycloud` command: builds the Typer app from one module per command group."""

from __future__ import annotations

import typer

from polycloud.cli import (
    audit,
    catalog,
    cost,
    demo,
    drill,
    export,
    jobs,
    keys,
    observe,
    planning,
    policy,
    rollout,
    runtime,
    secrets,
    tokens,
)

app = typer.Typer(
    name="polycloud",
    help="Run AI inference and training across clouds and on-prem sites as one fleet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    catalog,
    planning,
    runtime,
    demo,
    drill,
    export,
    policy,
    rollout,
    jobs,
    secrets,
    keys,
    tokens,
    audit,
    cost,
    observe,
):
    module.register(app)


def run() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    run()
