"""What every command shares: consoles, settings, and turning errors into messages and exit codes.

Import discipline: the CLI imports every command module before it parses its arguments (Typer builds
`--help` from the command functions), so this module and the command modules import only what is cheap
at the top — typer, the error classes, the standard library. Whatever a command needs beyond that (rich
tables, pydantic settings, the HTTP client, specs, the planner, the server stack) is imported inside the
command, or through the helpers below. `tests/cli/test_import_discipline.py` guards it.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import typer

from polycloud.errors import PolycloudError, SpecError, TransientError

if TYPE_CHECKING:
    from rich.console import Console

    from polycloud.client.http import ApiClient
    from polycloud.homefiles import RunInfo
    from polycloud.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

EXIT_INVALID = 1
EXIT_INFEASIBLE = 2
EXIT_VIOLATION = 2


class _LazyConsole:
    """A rich `Console` made on first use, so that rich is imported when a command prints, not when the
    CLI starts (`--help` may not need it). Every attribute is the console's."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        console = self._console
        if console is None:
            from rich.console import Console

            console = self._console = Console(**self._options)
        return getattr(console, name)


out = cast("Console", _LazyConsole(highlight=False, soft_wrap=False))
err = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))


_OVERRIDES: dict[str, str] = {}


def connect_to(server: str | None, token: str | None) -> None:
    """Take `--server` and `--token` for this invocation (they win over the environment)."""
    _OVERRIDES.clear()
    _OVERRIDES.update({k: v for k, v in (("server", server), ("token", token)) if v})


def settings() -> Settings:
    """Settings from the environment (and `--server`/`--token`), read at the edge of the process."""
    from polycloud.settings import Settings

    return Settings(**_OVERRIDES)


def connect(settings: Settings, *, start: bool, say: Callable[[str], None]) -> ApiClient:
    """`polycloud.client.discovery.connect`, imported (with the HTTP client) when a command calls it."""
    from polycloud.client.discovery import connect

    return connect(settings, start=start, say=say)


def find(settings: Settings) -> ApiClient | None:
    """`polycloud.client.discovery.find`, imported when a command calls it."""
    from polycloud.client.discovery import find

    return find(settings)


def start_background(settings: Settings) -> RunInfo:
    """`polycloud.client.discovery.start_background`, imported when a command calls it."""
    from polycloud.client.discovery import start_background

    return start_background(settings)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command, turning polycloud's errors into a clear message and exit status 1 (2: policy)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SpecError as e:
            for issue in e.issues:
                print(str(issue), file=sys.stderr)
            raise typer.Exit(EXIT_INVALID) from None
        except TransientError as e:
            err.print(f"[red]error:[/red] {e} (try again)")
            raise typer.Exit(EXIT_INVALID) from None
        except PolycloudError as e:
            violations = policy_violations(e)
            if violations is not None:
                for violation in violations:
                    print(f"policy violation: {violation}", file=sys.stderr)
                raise typer.Exit(EXIT_VIOLATION) from None
            err.print(f"[red]error:[/red] {e}", markup=True)
            raise typer.Exit(EXIT_INVALID) from None

    return wrapper


def policy_violations(e: PolycloudError) -> list[Any] | None:
    """The violations of `e` when it is a `PolicyViolationError`, else None.

    The class is looked up among the loaded modules, not imported: an error of it exists only once its
    module is loaded, and importing it (the policy engine and the spec models) would cost every command.
    """
    module = sys.modules.get("polycloud.policy.violations")
    if module is not None and isinstance(e, module.PolicyViolationError):
        return list(e.violations)
    return None


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    sys.stdout.flush()


def usd(x: float) -> str:
    return f"${x:,.2f}"
