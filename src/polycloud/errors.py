"""The error hierarchy: every failure polycloud reports derives from `PolycloudError`.

    PolycloudError
    ├── UserError            bad input the caller must fix (never retried)
    │   ├── SpecError        one or more spec problems, each with file:line:col and a field path
    │   ├── NotFoundError    a named thing (workload, revision, secret) does not exist
    │   └── ConflictError    the request contradicts current state
    ├── TransientError       worth retrying later (a replica not ready yet, a database blip)
    └── PermanentError       will not get better by retrying (a corrupt model, a driver refusal)

HTTP mapping lives in one place (`polycloud.api.errors`); the CLI maps them to exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass


class PolycloudError(Exception):
    """Root of every error polycloud raises on purpose."""


class UserError(PolycloudError):
    """The caller's input is wrong; the message says how to fix it."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec file, pointing at the exact place."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"


class SpecError(UserError):
    """A set of spec problems; its message lists each as `FILE:LINE:COL: path.to.field: message`."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.col, i.path))
        super().__init__("\n".join(str(i) for i in self.issues))


class NotFoundError(UserError):
    """A named object does not exist."""


class ConflictError(UserError):
    """The request contradicts the current state."""


class TransientError(PolycloudError):
    """A condition that may clear by itself; retry later."""


class PermanentError(PolycloudError):
    """A failure that retrying will not fix."""


class FencedError(TransientError):
    """A write of a leader that no longer holds the lease: refused, so a paused old leader changes nothing.

    Transient for the process (it may win the lease again later), never to be retried as the same write.
    """
