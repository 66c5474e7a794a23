"""Hypothesis against the request parsers of a replica (`polycloud.serving`) and of the gateway
(`polycloud.gateway`): whatever a client sends, the answer is a reason, never a crash.

- The replica's `parse_infer_request` returns a checked request or raises `InvalidRequest`, nothing
  else; its app answers every request below 500, with strict JSON (no NaN).
- The gateway's path, key and length parsers take any input; a real gateway in front of a real replica
  answers every generated request below 500, never ejects the replica for a client's error, and still
  serves a good request afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.gateway.support import FAST, ServerThread
from tests.support import EXAMPLE_MODEL

from polycloud.gateway import GatewaySettings, ReplicaRoute, RouteTable, ServiceRoutes, StaticRouteSource
from polycloud.gateway import create_app as create_gateway
from polycloud.gateway.app import _model_route
from polycloud.gateway.keys import presented_key
from polycloud.gateway.proxy import declared_too_large
from polycloud.gateway.running import SERVER_OPTIONS
from polycloud.serving.app import Replica, ServedModel
from polycloud.serving.app import create_app as create_replica
from polycloud.serving.faults import Faults, FaultSettings
from polycloud.serving.metrics import ReplicaLabels, ReplicaMetrics
from polycloud.serving.model import load_model
from polycloud.serving.protocol import InferRequest, InvalidRequest, parse_infer_request

pytestmark = pytest.mark.security

SERVICE = "species"
EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))

# ------------------------------------------------------------------------------------------ strategies

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
numbers = st.integers(-(2**70), 2**70) | st.floats() | st.booleans() | st.text(max_size=5) | st.none()
shapes = st.lists(st.integers(-3, 2**40) | st.just(4) | st.just(1), max_size=4) | json_values
datatypes = st.sampled_from(["FP32", "FP64", "FP16", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "fp32", ""])
data = st.recursive(st.lists(numbers, max_size=8), lambda inner: st.lists(inner, max_size=3), max_leaves=20)
entries = st.fixed_dictionaries(
    {"name": st.sampled_from(["input", "x", "", "input "]) | st.text(max_size=8)},
    optional={"shape": shapes, "datatype": datatypes | json_values, "data": data | json_values},
)
infer_requests = st.fixed_dictionaries(
    {"inputs": st.lists(entries, max_size=3) | json_values},
    optional={"id": json_values, "outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=12)}))},
)
deep = st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n) | st.integers(1, 100_000).map(
    lambda n: b'{"a":' * n + b"1" + b"}" * n
)
bodies = (
    infer_requests.map(lambda v: json.dumps(v, allow_nan=True).encode())
    | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())
    | st.binary(max_size=200)
    | deep
    | st.sampled_from([b"NaN", b"[Infinity]", b'{"inputs": [{"data": [1e999]}]}', b"\xff\xfe", b""])
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=200).map(
    lambda s: s.encode("latin-1")
)
"""Header values as bytes: any octet HTTP allows in a field value, not only ASCII."""
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"])
paths = st.sampled_from(
    [
        f"/v2/models/{SERVICE}/infer",
        f"/v2/models/{SERVICE}/versions/3/infer",
        f"/v2/models/{SERVICE}",
        f"/v2/models/{SERVICE}/ready",
        "/v2/health/ready",
        "/v2/health/live",
        "/v2",
        "/metrics",
    ]
) | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60).map(lambda p: "/" + p)
headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "", "application/json; charset=x"]
        ),
        "x-request-id": header_text,
        "authorization": header_text,
        "x-api-key": header_text,
        "x-polycloud-region": header_text,
        "x-polycloud-timeout-ms": header_text | st.integers(-5, 10**12).map(lambda n: str(n).encode()),
    },
)


def strict_json(text: str) -> Any:
    """`text` as JSON that any parser takes: NaN and Infinity refused."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a JSON answer")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------------------- replica


@pytest.fixture(scope="module")
def replica() -> Iterator[Replica]:
    served = ServedModel(SERVICE, "3", load_model(EXAMPLE_MODEL))
    made = Replica(
        served,
        Faults(FaultSettings(0.0, 0.0), random.Random(7)),
        ReplicaMetrics(ReplicaLabels(SERVICE, "a", "3")),
    )
    yield made
    made.close()


@pytest.fixture(scope="module")
def replica_app(replica: Replica) -> Any:
    return create_replica(replica)


@FUZZ
@given(body=bodies)
def test_the_replica_parser_gives_a_request_or_a_reason(replica: Replica, body: bytes) -> None:
    try:
        parsed = parse_infer_request(body, replica.served.model.info)
    except InvalidRequest as e:
        assert str(e)
    else:
        assert isinstance(parsed, InferRequest) and parsed.inputs


@FUZZ
@given(method=methods, path=paths, head=headers, body=bodies)
def test_the_replica_answers_every_request_below_500_in_strict_json(
    replica_app: Any, method: str, path: str, head: dict[str, bytes], body: bytes
) -> None:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=replica_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            return await client.request(method, path, headers=head, content=body)

    try:
        answer = asyncio.run(call())
    except httpx.InvalidURL:
        return  # not a request a client can send
    assert answer.status_code < 500, (method, path, body[:200], answer.text[:300])
    if answer.headers.get("content-type", "").startswith("application/json") and method != "HEAD":
        strict_json(answer.text)


# ------------------------------------------------------------------------------------------- gateway


@FUZZ
@given(path=st.text(max_size=80))
def test_the_gateways_route_parser_takes_any_path(path: str) -> None:
    name, method = _model_route(f"/v2/models/{path}")
    assert (name, method) == (None, "") or (name and "/" not in name and method in ("GET", "POST"))


@FUZZ
@example(pairs=[(b"x-api-key", b"\x1c")])  # whitespace to str.strip(), not to bytes.strip()
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from([b"authorization", b"x-api-key", b"host"]), st.binary(max_size=60))
    )
)
def test_the_gateways_key_parser_takes_any_header(pairs: list[tuple[bytes, bytes]]) -> None:
    key = presented_key(pairs)
    assert key is None or (key and key == key.strip())


@FUZZ
@given(text=st.none() | st.text(max_size=30), limit=st.integers(0, 2**40))
def test_the_gateways_length_check_takes_any_header(text: str | None, limit: int) -> None:
    assert declared_too_large(text, limit) in (True, False)


@pytest.fixture(scope="module")
def gateway(replica: Replica) -> Iterator[str]:
    upstream = ServerThread(create_replica(replica)).start()
    route = ReplicaRoute(id="a-0", cluster="a", role="active", endpoint=upstream.url, state="ready")
    source = StaticRouteSource(RouteTable.of([ServiceRoutes(SERVICE, "single", (route,))]))
    app = create_gateway(source, GatewaySettings(**FAST), rng=random.Random(7))
    server = ServerThread(app, lifespan="on", **SERVER_OPTIONS).start()
    yield server.url
    server.stop()
    upstream.stop()


def ejections(client: httpx.Client, url: str) -> float:
    lines = client.get(f"{url}/metrics").text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("polycloud_gateway_ejections_total{")
    )


def caller_deadline_passed(head: dict[str, bytes], answer: httpx.Response) -> bool:
    """A 504 for a deadline the caller set (`x-polycloud-timeout-ms: 1`) is the right answer, not a
    parser failure: whether a replica answers within a millisecond depends on the machine's load."""
    asked = head.get("x-polycloud-timeout-ms", b"")
    return answer.status_code == 504 and asked.isdigit() and "deadline passed" in answer.text


GOOD = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_the_gateway_answers_every_request_below_500_and_ejects_no_replica(gateway: str) -> None:
    seen: list[int] = []
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        assert client.post(f"{gateway}/v2/models/{SERVICE}/infer", json=GOOD).status_code == 200

        @FUZZ
        @given(method=methods, path=paths, head=headers, body=bodies)
        def fuzz(method: str, path: str, head: dict[str, bytes], body: bytes) -> None:
            try:
                answer = client.request(method, f"{gateway}{path}", headers=head, content=body)
            except (httpx.InvalidURL, httpx.LocalProtocolError):
                return  # not a request an HTTP client can send
            except httpx.RemoteProtocolError:
                return  # the HTTP server itself refused what it cannot parse (a closed connection)
            seen.append(answer.status_code)
            if not caller_deadline_passed(head, answer):
                assert answer.status_code < 500, (method, path, head, body[:200], answer.text[:300])
            if answer.headers.get("content-type", "").startswith("application/json") and method != "HEAD":
                strict_json(answer.text)

        fuzz()
        assert ejections(client, gateway) == 0
        after = client.post(f"{gateway}/v2/models/{SERVICE}/infer", json=GOOD)
        assert after.status_code == 200, after.text
    assert len(seen) > EXAMPLES / 2
