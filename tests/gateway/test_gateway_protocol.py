"""The gateway's face: OIP paths forwarded, its own health and metrics, request ids, cluster header, errors,
and route changes followed without a restart."""

from __future__ import annotations

import re

import httpx

from polycloud.gateway import ReplicaRoute, ServiceRoutes, StaticRouteSource

from .support import INFER_BODY, MakeGateway, MakeStub, replica, table, wait_until


def test_infer_is_forwarded_with_cluster_and_request_id(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("aws-use1")
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "aws-use1")])))

    answer = client.post(
        f"{gateway.url}/v2/models/m/infer", json=INFER_BODY, headers={"x-request-id": "abc-1"}
    )

    assert answer.status_code == 200
    assert answer.json()["cluster"] == "aws-use1"
    assert answer.headers["x-polycloud-cluster"] == "aws-use1"
    assert answer.headers["x-request-id"] == "abc-1"
    assert answer.headers["x-stub"] == "1"  # the replica's own headers pass through
    assert stub.replica.seen_headers[-1]["x-request-id"] == "abc-1"


def test_request_id_is_generated_when_absent(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "a")])))

    first = client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY)
    second = client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY)

    generated = first.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert second.headers["x-request-id"] != generated
    assert stub.replica.seen_headers[0]["x-request-id"] == generated


def test_metadata_and_model_ready_are_forwarded(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "a")])))

    metadata = client.get(f"{gateway.url}/v2/models/m")
    ready = client.get(f"{gateway.url}/v2/models/m/ready")

    assert metadata.status_code == 200
    assert metadata.json()["platform"] == "stub"
    assert metadata.headers["x-polycloud-cluster"] == "a"
    assert ready.status_code == 200
    assert ready.json() == {"name": "m", "ready": True}


def test_own_health_metrics_and_server_metadata(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "a")])))
    client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY)

    assert client.get(f"{gateway.url}/v2/health/live").json() == {"live": True}
    assert client.get(f"{gateway.url}/v2/health/ready").json() == {"ready": True}
    assert client.get(f"{gateway.url}/v2").json()["name"] == "polycloud-gateway"
    metrics = client.get(f"{gateway.url}/metrics")
    assert metrics.status_code == 200
    assert 'polycloud_gateway_requests_total{cluster="a",code="200",service="m"} 1.0' in metrics.text
    assert "polycloud_gateway_request_duration_seconds_bucket" in metrics.text
    assert "polycloud_gateway_in_flight 0.0" in metrics.text


def test_draining_gateway_reports_not_ready(make_gateway: MakeGateway, client: httpx.Client) -> None:
    gateway = make_gateway(StaticRouteSource(table([])))

    gateway.app.drain()

    answer = client.get(f"{gateway.url}/v2/health/ready")
    assert answer.status_code == 503
    assert answer.json() == {"ready": False}


def test_unknown_service_is_404_json(make_gateway: MakeGateway, client: httpx.Client) -> None:
    gateway = make_gateway(StaticRouteSource(table([])))

    answer = client.post(
        f"{gateway.url}/v2/models/nope/infer", json=INFER_BODY, headers={"x-request-id": "r9"}
    )

    assert answer.status_code == 404
    assert "nope" in answer.json()["error"]
    assert answer.headers["x-request-id"] == "r9"


def test_unknown_paths_and_wrong_methods(make_gateway: MakeGateway, client: httpx.Client) -> None:
    gateway = make_gateway(StaticRouteSource(table([])))

    assert client.get(f"{gateway.url}/v1/other").status_code == 404
    assert client.get(f"{gateway.url}/v2/models/m/explain").status_code == 404
    assert client.get(f"{gateway.url}/v2/models/m/infer").status_code == 405
    assert client.post(f"{gateway.url}/v2/models/m", json={}).status_code == 405
    assert "error" in client.get(f"{gateway.url}/v2/models/").json()


def test_no_ready_replica_is_503_with_reason(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    starting = ReplicaRoute(id="a-0", cluster="a", role="active", endpoint=stub.url, state="starting")
    empty = ServiceRoutes("empty", "single", ())
    gateway = make_gateway(StaticRouteSource(table([starting], others=[empty])))

    answer = client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY)
    nothing = client.post(f"{gateway.url}/v2/models/empty/infer", json=INFER_BODY)

    assert answer.status_code == 503
    assert "1 starting" in answer.json()["error"]
    assert answer.headers["retry-after"] == "1"
    assert nothing.status_code == 503
    assert "no replica" in nothing.json()["error"]
    assert stub.replica.hits == 0


def test_bad_deadline_header_is_400(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    stub = make_stub("a")
    gateway = make_gateway(StaticRouteSource(table([replica(stub.server, "a")])))

    for bad in ("abc", "0", "-5", "nan"):
        answer = client.post(
            f"{gateway.url}/v2/models/m/infer", json=INFER_BODY, headers={"x-polycloud-timeout-ms": bad}
        )
        assert answer.status_code == 400, bad
    assert stub.replica.hits == 0


def test_route_changes_are_followed_without_restart(
    make_stub: MakeStub, make_gateway: MakeGateway, client: httpx.Client
) -> None:
    old, new = make_stub("old"), make_stub("new")
    other = make_stub("x", model="other")
    source = StaticRouteSource(table([replica(old.server, "old")]))
    gateway = make_gateway(source)
    assert client.post(f"{gateway.url}/v2/models/other/infer", json=INFER_BODY).status_code == 404

    source.set(
        table(
            [replica(new.server, "new")],
            others=[ServiceRoutes("other", "single", (replica(other.server, "x"),))],
        )
    )

    def served_by_new() -> bool:
        answer = client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY)
        return bool(answer.headers.get("x-polycloud-cluster") == "new")

    wait_until(served_by_new, what="traffic to move to the new cluster")
    answers = [client.post(f"{gateway.url}/v2/models/m/infer", json=INFER_BODY) for _ in range(10)]
    assert {a.headers["x-polycloud-cluster"] for a in answers} == {"new"}
    assert client.post(f"{gateway.url}/v2/models/other/infer", json=INFER_BODY).status_code == 200
