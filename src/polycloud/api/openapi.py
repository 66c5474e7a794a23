"""The OpenAPI document: every error answer documented with its one shape, and the bearer scheme declared.

FastAPI documents only 422 validation errors (in a shape this API never sends: it answers 400 with
`{"error", "issues"}`); clients and schemathesis need the statuses and bodies the API really gives.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from polycloud.pki.workload import DISCOVERY_PATH, JWKS_PATH

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "Why, in one message."},
        "issues": {"type": "array", "items": {"type": "string"}, "description": "Each problem found."},
    },
}
ERRORS = {
    "400": "Invalid request: the reason and, for bad fields, each issue.",
    "401": "Missing, unknown, revoked or expired bearer token.",
    "403": "The token's role or project does not allow this.",
    "404": "No such object.",
    "409": "The request contradicts the current state.",
    "413": "The request body is too large.",
    "422": "Invalid documents (spec or policy), with each issue.",
    "429": "Too many requests.",
    "503": "Temporarily unavailable; try again.",
}
PUBLIC = {"/api/v1/health", DISCOVERY_PATH, JWKS_PATH}
"""Paths answered without a token (the workload issuer's documents: the clouds fetch them)."""


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` document the error answers and the bearer token of every operation."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            _add_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _add_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, why in ERRORS.items():
                if path not in PUBLIC or code in ("400", "413", "429", "503"):
                    responses[code] = {"description": why, "content": error}
            if path not in PUBLIC:
                operation["security"] = [{"bearer": []}]
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
