"""The one place where polycloud errors become HTTP answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from polycloud import names
from polycloud.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    PolycloudError,
    SpecError,
    TransientError,
    UserError,
)
from polycloud.policy import PolicyViolationError

STATUS: list[tuple[type[PolycloudError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (SpecError, 422),
    (PolicyViolationError, 422),
    (UserError, 400),
    (TransientError, 503),
    (PermanentError, 500),
]


def install(app: FastAPI) -> None:
    @app.exception_handler(PolycloudError)
    async def _polycloud(_: Request, e: PolycloudError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(e, kind)), 500)
        body: dict[str, object] = {"error": str(e)}
        if isinstance(e, SpecError):
            body["issues"] = [str(i) for i in e.issues]
        if isinstance(e, PolicyViolationError):
            body["violations"] = [v.to_json() for v in e.violations]
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        issues = [f"{'.'.join(str(p) for p in err['loc'])}: {_message(err)}" for err in e.errors()]
        return JSONResponse({"error": "invalid request", "issues": issues}, status_code=400)


def _message(err: Any) -> str:
    """pydantic's message, said plainly where it would quote a regular expression or "a valid boolean"."""
    kind, given = err.get("type"), err.get("input")
    rule = names.RULES.get(str((err.get("ctx") or {}).get("pattern")))
    if kind == "string_pattern_mismatch" and rule is not None:
        return f"must be {rule}, not {given!r}"[:300]
    if kind == "bool_type":
        return f"must be true or false, not {given!r}"[:300]
    return str(err["msg"])
