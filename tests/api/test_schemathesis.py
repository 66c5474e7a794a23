"""schemathesis against /api/v1/openapi.json with an admin token: no 5xx, and every answer fits the schema.

Every operation of the document gets a few generated requests, valid and invalid, against the in-process
API over a real store holding two projects' services. Kept small so that the run takes well under a
minute; failures are collected over every operation and reported together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode, checks
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi import from_asgi
from schemathesis.schemas import APIOperation

from .conftest import Governed

CHECKS: list[Callable[..., Any]] = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]
EXAMPLES = 10
"""Generated requests per operation and mode (valid, invalid)."""


STREAMS = {"/api/v1/dashboard/stream"}
"""Server-sent events never end, so no generated call could finish; tests/api/test_dashboard.py reads it."""


def addressed_to_localhost(app: Any) -> Any:
    """`app` behind a rewrite of schemathesis's fixed `Host: testserver` to a host the API answers."""

    async def rewritten(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(k, b"localhost" if k == b"host" else v) for k, v in scope["headers"]]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return rewritten


def operations(governed: Governed) -> list[APIOperation]:
    schema = from_asgi("/api/v1/openapi.json", addressed_to_localhost(governed.client.app))
    found = [result.ok() for result in schema.get_all_operations()]
    return [o for o in found if o.path not in STREAMS]


def exercise(operation: APIOperation, mode: GenerationMode, governed: Governed) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        # A fresh admin token per request: generated calls may revoke earlier ones.
        token = governed.token("admin")["authorization"]
        case.call_and_validate(headers={"Authorization": token}, checks=CHECKS)

    run()


@pytest.mark.timeout(120)
def test_the_api_keeps_its_contract(governed: Governed) -> None:
    failures = []
    for operation in operations(governed):
        for mode in GenerationMode:
            try:
                exercise(operation, mode, governed)
            except Unsatisfiable:
                continue  # an operation without inputs has no invalid requests to make
            except (FailureGroup, AssertionError) as e:  # one report for every operation, not the first
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {e}"[:2000])
    assert not failures, "\n\n".join(failures)
