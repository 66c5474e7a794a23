"""A live control plane under attack: schemathesis over its API, then the secret-leak and permission
checks over everything the run left behind.

In file order (one `probed` control plane for the module): the API fuzz first, so the later checks
also cover what thousands of generated requests made the control plane write.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode, checks
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi import from_url
from schemathesis.schemas import APIOperation
from tests.e2e.conftest import home_processes

from .conftest import Probed

pytestmark = [pytest.mark.security, pytest.mark.e2e]

MAX_EXAMPLES = 10
"""Generated requests per operation and generation mode: 20 per operation, valid and invalid."""
CHECKS: list[Callable[..., Any]] = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]
SKIPPED = {
    "/api/v1/dashboard/stream": "server-sent events never end",
    "/api/v1/shutdown": "would stop the control plane under test (tests/api covers it in-process)",
}


def operations(api_url: str) -> list[APIOperation]:
    schema = from_url(f"{api_url}/api/v1/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    return [o for o in found if o.path not in SKIPPED]


def exercise(operation: APIOperation, mode: GenerationMode, probed: Probed, session: requests.Session) -> int:
    calls = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        nonlocal calls
        headers = {"Authorization": f"Bearer {probed.admin_token()}"}
        response = case.call(base_url=probed.api_url(), session=session, headers=headers, timeout=60)
        calls += 1
        case.validate_response(
            response, checks=CHECKS, headers=headers, transport_kwargs={"session": session}
        )
        assert probed.secret not in response.text, (
            f"the planted secret is in an answer: {response.text[:300]}"
        )

    run()
    return calls


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_5xx_and_no_answer_off_contract(probed: Probed) -> None:
    failures, calls, took = [], 0, {}
    found = operations(probed.api_url())
    assert len(found) > 40
    with requests.Session() as session:
        session.trust_env = False
        for operation in found:
            started = time.monotonic()
            for mode in GenerationMode:
                try:
                    calls += exercise(operation, mode, probed, session)
                except Unsatisfiable:
                    continue  # an operation without inputs has no invalid requests to make
                except (FailureGroup, AssertionError) as e:  # one report for every operation, not the first
                    failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {e}"[:2000])
            took[f"{operation.method.upper()} {operation.path}"] = time.monotonic() - started
    slowest = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(took.items(), key=lambda kv: -kv[1])[:5])
    print(f"schemathesis: {calls} requests, {len(found)} operations, {sum(took.values()):.0f} s")
    print(f"  slowest: {slowest}")
    probed.restore_admin()
    assert not failures, "\n\n".join(failures)
    assert probed.polycloud.api_status()["api"]["url"] == probed.api_url()  # still serving


def test_the_planted_secret_is_in_no_output_file_or_command_line(probed: Probed) -> None:
    value = probed.secret
    services = probed.polycloud.status()["services"]
    replica = [r for s in services for c in s["clusters"] for r in c["replicas"]]
    for args in [
        ("status",),
        ("status", "--json"),
        ("events", "--json"),
        ("history", "alpha"),
        ("secret", "list"),
    ]:
        probed.keep(probed.polycloud.cli(*args))
    if replica:  # the fuzz may have pruned the service (an apply of no documents is valid)
        probed.keep(probed.polycloud.cli("logs", replica[0]["id"]))
    probed.keep(probed.polycloud.cli("audit", "verify"))
    api = probed.polycloud.api()
    for path in (
        "/status",
        "/events",
        "/secrets",
        "/audit?limit=1000",
        "/dashboard/overview",
        "/slo",
        "/keys",
    ):
        probed.outputs.append(api.get(path).text)
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        probed.outputs.append(client.get(f"{probed.api_url()}/metrics").text)
        probed.outputs.append(client.get(f"{probed.gateway_url()}/metrics").text)

    leaks = [o[:300] for o in probed.outputs if value in o]
    assert not leaks, f"the planted secret is in an output: {leaks[0]}"
    files = [str(p) for p in probed.home.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]
    assert not files, f"the planted secret is in {files}"
    for proc in home_processes(probed.home):
        try:
            assert value not in " ".join(proc.cmdline()), (
                f"the planted secret is on pid {proc.pid}'s command line"
            )
            if "polycloud.serving" not in " ".join(proc.cmdline()):  # only replicas may hold it
                assert value not in json.dumps(proc.environ()), f"pid {proc.pid} holds the secret"
        except psutil.NoSuchProcess:
            continue


def test_everything_under_the_home_is_private(probed: Probed) -> None:
    loose = []
    for path in [probed.home, *probed.home.rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(mode) and mode & 0o077:
            loose.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(probed.home)}")
    assert not loose, "readable by others:\n" + "\n".join(loose)
    assert {p.name for p in Path(probed.home).iterdir()} >= {"state.db", "logs", "admin.token"}
