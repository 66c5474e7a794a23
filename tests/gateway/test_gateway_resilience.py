"""Resilience through real HTTP: failover without failed requests, retries of 5xx on another cluster,
4xx passed through untried elsewhere, deadlines, ejection, and 429 when saturated."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from polycloud.gateway import ClusterRoute, StaticRouteSource

from .support import INFER_BODY, Gateway, MakeGateway, MakeStub, replica, table, wait_until


def near(name: str) -> ClusterRoute:
    """A cluster beside the gateway (Virginia)."""
    return ClusterRoute(name, "aws", "us-east-1", 38.99, -77.45)


def far(name: str) -> ClusterRoute:
    """A cluster across the world from the gateway (Sydney)."""
    return ClusterRoute(name, "aws", "ap-southeast-2", -33.87, 151.21)


HOME = "aws/us-east-1"
"""The gateway's region in tests that make one cluster the preferred (near) one."""


def infer(client: httpx.Client, gateway: Gateway, **headers: str) -> httpx.Response:
    return client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY, headers=headers)


def test_losing_a_cluster_mid_stream_fails_no_request(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    a = [make_stub("a"), make_stub("a")]
    b = [make_stub("b"), make_stub("b")]
    routes = table(
        [*(replica(s.server, "a") for s in a), *(replica(s.server, "b") for s in b)],
        clusters=[near("a"), far("b")],
    )
    gateway = make_gateway(StaticRouteSource(routes), region=HOME)

    statuses: Counter[int] = Counter()
    served_after: Counter[str] = Counter()
    for i in range(200):
        if i == 50:
            for stub in a:
                stub.stop()
        answer = infer(client, gateway)
        statuses[answer.status_code] += 1
        if i >= 50:
            served_after[answer.headers["x-polycloud-cluster"]] += 1

    assert statuses == {200: 200}
    assert served_after == {"b": 150}
    assert sum(s.replica.hits for s in a) == 50  # the near cluster served everything until it went away


def test_a_5xx_is_retried_on_another_cluster_and_ejects_the_replica(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    broken, healthy = make_stub("broken"), make_stub("healthy")
    broken.replica.infer_status = 500
    routes = table(
        [replica(broken.server, "broken"), replica(healthy.server, "healthy")],
        clusters=[near("broken"), far("healthy")],
    )
    gateway = make_gateway(StaticRouteSource(routes), region=HOME, eject_after_failures=2, eject_base_s=60)

    answers = [infer(client, gateway) for _ in range(30)]

    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["x-polycloud-cluster"] for a in answers} == {"healthy"}
    assert broken.replica.hits == 2  # ejected after two failures, each retried on the other cluster
    metrics = client.get(f"{gateway.url}/metrics").text
    assert 'polycloud_gateway_ejections_total{cluster="broken",service="m"} 1.0' in metrics
    assert 'polycloud_gateway_retries_total{service="m"} 2.0' in metrics


def test_client_errors_pass_through_unchanged_and_are_not_retried(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stubs = [make_stub("a"), make_stub("b")]
    for stub in stubs:
        stub.replica.infer_status = 400
    gateway = make_gateway(StaticRouteSource(table([replica(s.server, s.replica.cluster) for s in stubs])))

    answer = infer(client, gateway)

    assert answer.status_code == 400
    cluster = answer.headers["x-polycloud-cluster"]
    assert answer.json() == {"error": f"stub error 400 from {cluster}"}
    assert sum(s.replica.hits for s in stubs) == 1


def test_when_every_replica_fails_the_last_5xx_is_passed_through(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stubs = [make_stub("a"), make_stub("b")]
    for stub in stubs:
        stub.replica.infer_status = 502
    gateway = make_gateway(StaticRouteSource(table([replica(s.server, s.replica.cluster) for s in stubs])))

    answer = infer(client, gateway, **{"x-request-id": "r1"})

    assert answer.status_code == 502
    assert answer.json()["error"].startswith("stub error 502")
    assert answer.headers["x-request-id"] == "r1"
    assert sum(s.replica.hits for s in stubs) == 2  # each replica once: nothing else to try


def test_deadline_from_the_header_bounds_the_request(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    stub.replica.infer_delay_s = 5.0
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "a")])))

    answer = infer(client, gateway, **{"x-polycloud-timeout-ms": "200"})

    assert answer.status_code == 504
    assert "deadline" in answer.json()["error"]


def test_a_hung_replica_is_retried_elsewhere_within_the_deadline(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    hung, fine = make_stub("hung"), make_stub("fine")
    hung.replica.infer_delay_s = 30.0
    routes = table(
        [replica(hung.server, "hung"), replica(fine.server, "fine")],
        clusters=[near("hung"), far("fine")],
    )
    gateway = make_gateway(StaticRouteSource(routes), region=HOME, attempt_timeout_s=0.3)

    answers = [infer(client, gateway) for _ in range(6)]

    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["x-polycloud-cluster"] for a in answers} == {"fine"}
    assert hung.replica.hits >= 1


def test_saturated_gateway_answers_429_with_retry_after(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    stub.replica.hold()
    gateway = make_gateway(
        StaticRouteSource(table([replica(stub.server, "a")])), max_in_flight=2, retry_after_s=3
    )

    with ThreadPoolExecutor(max_workers=2) as pool:
        held = [pool.submit(infer, client, gateway) for _ in range(2)]
        wait_until(lambda: stub.replica.in_flight == 2, what="two requests in flight")

        refused = infer(client, gateway)

        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "3"
        assert "saturated" in refused.json()["error"]
        stub.replica.release()
        assert [f.result().status_code for f in held] == [200, 200]
    assert infer(client, gateway).status_code == 200


def test_saturated_replicas_answer_429(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    stub.replica.hold()
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "a")])), max_in_flight_per_replica=1)

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(infer, client, gateway)
        wait_until(lambda: stub.replica.in_flight == 1, what="one request in flight")

        refused = infer(client, gateway)

        assert refused.status_code == 429
        assert "retry-after" in refused.headers
        stub.replica.release()
        assert held.result().status_code == 200
    assert stub.replica.hits == 1
