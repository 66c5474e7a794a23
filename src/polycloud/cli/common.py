"""What every command shares: consoles, settings, and turning errors into messages and exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from polycloud.errors import PolycloudError, SpecError, TransientError
from polycloud.policy import PolicyViolationError
from polycloud.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INVALID = 1
EXIT_INFEASIBLE = 2
EXIT_VIOLATION = 2


_OVERRIDES: dict[str, str] = {}


def connect_to(server: str | None, token: str | None) -> None:
    """Take `--server` and `--token` for this invocation (they win over the environment)."""
    _OVERRIDES.clear()
    _OVERRIDES.update({k: v for k, v in (("server", server), ("token", token)) if v})


def settings() -> Settings:
    """Settings from the environment (and `--server`/`--token`), read at the edge of the process."""
    return Settings(**_OVERRIDES)  # type: ignore[arg-type]


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
        except PolicyViolationError as e:
            for violation in e.violations:
                print(f"policy violation: {violation}", file=sys.stderr)
            raise typer.Exit(EXIT_VIOLATION) from None
        except TransientError as e:
            err.print(f"[red]error:[/red] {e} (try again)")
            raise typer.Exit(EXIT_INVALID) from None
        except PolycloudError as e:
            err.print(f"[red]error:[/red] {e}", markup=True)
            raise typer.Exit(EXIT_INVALID) from None

    return wrapper


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    sys.stdout.flush()


def usd(x: float) -> str:
    return f"${x:,.2f}"
