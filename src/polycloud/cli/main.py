"""Entry point of the `polycloud` command: builds the Typer app from one module per command group.

Every command starts here, so this is kept fast (issue 17):
- a command imports only its own module: `run()` reads the command's name and registers that module
  alone; `--help`, a mistyped name and anything unusual get every module (`app`, what tests use);
- the command modules import only what is cheap at their top (see `polycloud.cli.common`), and their
  annotations are evaluated once, at import, not from strings by Typer on every start (no
  `from __future__ import annotations` in the command modules);
- help and usage errors are plain text, not rich panels (rich and its markdown parser would double the
  start-up of `--help`). Commands still print tables with rich, importing it when they print.

`tests/cli/test_import_discipline.py` guards what each command imports and that `COMMANDS` names every
command of `app`; `bench/cli_bench.py` measures the start-up.
"""

import importlib
import sys
from collections.abc import Iterable
from typing import Annotated

import typer

from polycloud.cli.common import connect_to
from polycloud.homefiles import keep_private

MODULES = (
    "catalog",
    "planning",
    "runtime",
    "server",
    "gateway",
    "demo",
    "drill",
    "export",
    "policy",
    "rollout",
    "jobs",
    "lineage",
    "secrets",
    "certs",
    "identity",
    "keys",
    "flags",
    "tokens",
    "login",
    "audit",
    "cost",
    "observe",
    "dashboard",
)
"""The modules of `polycloud.cli` that register commands (each has `register(app)`), in `--help` order."""

COMMANDS = {
    "catalog": "catalog",
    "validate": "planning",
    "plan": "planning",
    "schema": "planning",
    "up": "runtime",
    "apply": "runtime",
    "status": "runtime",
    "history": "runtime",
    "rollback": "runtime",
    "down": "runtime",
    "logs": "runtime",
    "events": "runtime",
    "server": "server",
    "gateway": "gateway",
    "demo": "demo",
    "drill": "drill",
    "export": "export",
    "policy": "policy",
    "rollout": "rollout",
    "jobs": "jobs",
    "lineage": "lineage",
    "secret": "secrets",
    "cert": "certs",
    "identity": "identity",
    "key": "keys",
    "flags": "flags",
    "token": "tokens",
    "login": "login",
    "logout": "login",
    "audit": "audit",
    "cost": "cost",
    "advise": "cost",
    "slo": "observe",
    "incidents": "observe",
    "dashboard": "dashboard",
}
"""Each command (or command group) of `polycloud`, and the module that registers it."""

GLOBAL_OPTIONS = ("--server", "--token")
"""The options of `polycloud` itself, each with a value, which may come before the command."""


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


def build(modules: Iterable[str]) -> typer.Typer:
    """The `polycloud` app with the commands of `modules` (names in `polycloud.cli`)."""
    app = typer.Typer(
        name="polycloud",
        help="Run AI inference and training across clouds and on-prem sites as one fleet.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain help: see above
        context_settings={"max_content_width": 120},  # help as wide as the terminal, up to 120 columns
    )
    app.callback(epilog="Example: polycloud --server https://polycloud.example.com:8700 status")(connection)
    for name in modules:
        importlib.import_module(f"polycloud.cli.{name}").register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    """`app`: the whole CLI, every command registered; built on first use."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()["app"] = build(MODULES)
    return app


def command_name(args: list[str]) -> str | None:
    """The command `args` (the words after `polycloud`) run, or None when they start otherwise (no
    command, `--help`, an option this does not know)."""
    words = iter(args)
    for word in words:
        if word in GLOBAL_OPTIONS:
            next(words, None)
        elif word.split("=", 1)[0] in GLOBAL_OPTIONS:
            continue
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


def run() -> None:
    """Console-script entry point (also `python -m polycloud.cli.main`, as a background `up` starts)."""
    keep_private()  # the home, and whatever replicas, gateways and jobs started from here write in it
    # httpx imports its own command-line client when it is imported (click, pygments, rich's progress
    # bars: about 60 ms of every command that talks to a control plane), only to offer `httpx.main`,
    # which polycloud never calls. A module marked absent is skipped: httpx then defines a stand-in.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    module = COMMANDS.get(command_name(sys.argv[1:]) or "")
    app = build([module]) if module is not None else build(MODULES)
    app()


if __name__ == "__main__":
    run()
