"""The dashboard's door: login codes and session cookies, the overview and its stream, drills, the page."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from tests.support import FaultLog, wait_until

from polycloud.api.feed import Feed
from polycloud.drivers.base import Fault
from polycloud.exchange import LoadReport
from polycloud.serving.llm import lm
from polycloud.state import ReplicaRecord

from .conftest import CLUSTER, Governed, service


def login_with_code(gov: Governed, role: str = "viewer", project: str | None = None) -> str:
    """Log the test client in as a fresh token through a login code; returns the session cookie."""
    code = gov.client.post("/api/v1/session/codes", headers=gov.token(role, project))
    assert code.status_code == 201, code.text
    answer = gov.client.post("/api/v1/session", json={"code": code.json()["code"]})
    assert answer.status_code == 200, answer.text
    cookie = gov.client.cookies.get("polycloud_session")
    assert cookie and cookie.startswith("pcs_")
    return cookie


def test_a_login_code_works_once_and_sets_a_strict_http_only_cookie(governed: Governed) -> None:
    code = governed.client.post("/api/v1/session/codes", headers=governed.token("deployer")).json()["code"]
    first = governed.client.post("/api/v1/session", json={"code": code})
    assert first.status_code == 200
    assert first.json()["role"] == "deployer"
    set_cookie = first.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/" in set_cookie
    assert governed.client.get("/api/v1/session").json()["role"] == "deployer"
    governed.client.cookies.clear()
    again = governed.client.post("/api/v1/session", json={"code": code})
    assert again.status_code == 401
    assert "used or expired" in again.json()["error"]


def test_a_typed_token_logs_in_and_a_wrong_one_is_refused(governed: Governed) -> None:
    secret, _ = governed.store.create_token(name="alice", role="viewer", project="alpha", expires_at=None)
    assert governed.client.post("/api/v1/session", json={"token": "pc_nope"}).status_code == 401
    answer = governed.client.post("/api/v1/session", json={"token": secret})
    assert answer.json() == {
        "name": "alice",
        "role": "viewer",
        "project": "alpha",
        "tokenId": answer.json()["tokenId"],
    }
    assert governed.client.post("/api/v1/session", json={}).status_code == 400


def test_cookie_changes_need_the_dashboard_header(governed: Governed) -> None:
    login_with_code(governed, "deployer")
    body = {"service": "alpha-svc"}
    refused = governed.client.post("/api/v1/keys", json=body)
    assert refused.status_code == 401
    assert "x-polycloud-dashboard" in refused.json()["error"]
    allowed = governed.client.post("/api/v1/keys", json=body, headers={"x-polycloud-dashboard": "1"})
    assert allowed.status_code == 200, allowed.text


def test_a_session_has_its_tokens_role_and_dies_with_it(governed: Governed) -> None:
    login_with_code(governed, "viewer", "beta")
    hidden = governed.client.get("/api/v1/workloads/alpha-svc/history")
    assert hidden.status_code == 403
    names = [s["name"] for s in governed.client.get("/api/v1/dashboard/overview").json()["services"]]
    assert names == ["beta-svc"]
    token_id = governed.client.get("/api/v1/session").json()["tokenId"]
    governed.store.revoke_token(token_id)
    assert governed.client.get("/api/v1/dashboard/overview").status_code == 401


def test_logout_ends_the_session(governed: Governed) -> None:
    cookie = login_with_code(governed)
    out = governed.client.delete("/api/v1/session", headers={"x-polycloud-dashboard": "1"})
    assert out.status_code == 204
    governed.client.cookies.set("polycloud_session", cookie)
    assert governed.client.get("/api/v1/session").status_code == 401


def test_logins_are_audited(governed: Governed) -> None:
    login_with_code(governed, "viewer")
    entries = governed.store.audit_log(limit=5)
    assert entries[0].action == "dashboard.login"
    assert entries[0].detail == {"with": "code"}


def test_overview_shows_health_load_and_flows(governed: Governed) -> None:
    replica = ReplicaRecord(
        id="alpha-svc-west-0",
        workload="alpha-svc",
        cluster="west",
        role="active",
        revision=1,
        endpoint="http://127.0.0.1:1",
        pid=1,
        state="ready",
    )
    governed.store.replace_replicas([replica])
    governed.store.report_load(
        "gw", [LoadReport("alpha-svc", "west", 1.0, 1.0, rps=10.0, error_rate=0.0, p99_ms=9.0, p50_ms=2.0)]
    )
    view = governed.client.get("/api/v1/dashboard/overview", headers=governed.token("viewer")).json()
    west = next(c for c in view["clusters"] if c["name"] == "west")
    assert (west["health"], west["ready"], west["desired"]) == ("degraded", 1, 2)  # beta-svc's is missing
    assert (west["lat"], west["lon"], west["rps"], west["p50Ms"]) == (38.7, -9.1, 10.0, 2.0)
    alpha = next(s for s in view["services"] if s["name"] == "alpha-svc")
    assert alpha["clusters"][0]["health"] == "up"
    beta = next(s for s in view["services"] if s["name"] == "beta-svc")
    assert beta["clusters"][0]["health"] == "down"


def test_an_llm_service_shows_its_tokens_per_second_and_today_per_cluster(governed: Governed) -> None:
    """Tokens/s from the gateways' last one-second windows (summed over gateways), today's tokens from
    every report; the latency figures of an openai service are its time to first token."""
    (governed.root / "tiny-lm.json").write_bytes(lm.dumps(lm.train(["the gateway routes tokens " * 4])))
    chat = service("chat", "alpha")
    chat["spec"] = {**chat["spec"], "protocol": "openai", "model": {"path": "tiny-lm.json"}}
    admin = governed.token("admin")
    applied = governed.apply(admin, CLUSTER, service("alpha-svc", "alpha"), service("beta-svc", "beta"), chat)
    assert applied.status_code == 200, applied.text

    def report(gateway: str, prompt: int, completion: int, itl_ms: float) -> None:
        row = LoadReport("chat", "west", 1.0, 1.0, rps=2.0, error_rate=0.0, p99_ms=90.0, p50_ms=40.0)
        governed.store.report_load(
            gateway, [replace(row, prompt_tokens=prompt, completion_tokens=completion, inter_token_ms=itl_ms)]
        )

    report("gw-1", 30, 50, 99.0)  # an earlier window of gw-1: counted today, no longer in its rate
    report("gw-1", 10, 20, 10.0)
    report("gw-2", 5, 5, 16.0)
    view = governed.client.get("/api/v1/dashboard/overview", headers=governed.token("viewer", "alpha")).json()
    by_name = {s["name"]: s for s in view["services"]}
    llm, plain = by_name["chat"], by_name["alpha-svc"]
    assert (llm["protocol"], plain["protocol"]) == ("openai", "oip-v2")
    assert (llm["promptTokensPerS"], llm["completionTokensPerS"]) == (15.0, 25.0)
    assert llm["tokensToday"] == {"prompt": 45, "completion": 75}
    assert (llm["p50Ms"], llm["p99Ms"]) == (40.0, 90.0)  # time to first token, as the gateways report it
    (west,) = llm["clusters"]
    assert (west["cluster"], west["promptTokensPerS"], west["completionTokensPerS"]) == ("west", 15.0, 25.0)
    assert west["interTokenMs"] == 11.2  # (10 ms × 20 + 16 ms × 5) / 25: weighted by completion tokens
    assert west["tokensToday"] == {"prompt": 45, "completion": 75}
    assert (plain["promptTokensPerS"], plain["tokensToday"]) == (0.0, {"prompt": 0, "completion": 0})
    cluster = next(c for c in view["clusters"] if c["name"] == "west")
    assert cluster["completionTokensPerS"] == 25.0

    feed: Feed = governed.client.app.state.feed  # type: ignore[attr-defined]
    feed.tick()
    series = governed.client.get("/api/v1/dashboard/series", headers=governed.token("viewer")).json()
    assert series["services"]["chat"]["promptTokensPerS"][-1] == 15.0
    assert series["services"]["chat"]["completionTokensPerS"][-1] == 25.0
    assert series["clusters"]["west"]["completionTokensPerS"][-1] == 25.0


def test_explain_gives_the_planners_reasons(governed: Governed) -> None:
    answer = governed.client.get(
        "/api/v1/dashboard/services/alpha-svc/explain", headers=governed.token("viewer", "alpha")
    )
    assert answer.status_code == 200
    assert answer.json()["assignments"][0]["cluster"] == "west"
    assert "west" in answer.json()["explanation"]
    missing = governed.client.get("/api/v1/dashboard/services/nope/explain", headers=governed.token("admin"))
    assert missing.status_code == 404


def test_a_drill_injects_a_fault_and_clears_it_after_its_time(governed: Governed) -> None:
    answer = governed.client.post(
        "/api/v1/dashboard/drills", json={"cluster": "west", "seconds": 2}, headers=governed.token("deployer")
    )
    assert answer.status_code == 202, answer.text
    assert governed.faults.carried("west") == [Fault(kind="down")]  # in force when the answer comes
    busy = governed.client.post(
        "/api/v1/dashboard/drills", json={"cluster": "west", "seconds": 2}, headers=governed.token("admin")
    )
    assert busy.status_code == 400 and "already running" in busy.json()["error"]
    deadline = time.monotonic() + 10

    def ended() -> bool:
        cleared = not governed.faults.carried("west") and not governed.store.live_faults()
        return cleared and "DrillEnded" in [e.reason for e in governed.store.events(limit=10)]

    # The drill clears the driver's fault, records the release, then its end: wait for all three (under
    # load each may come a moment after the one before).
    while not ended() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert governed.faults.carried("west") == [] and governed.store.live_faults() == []
    reasons = [e.reason for e in governed.store.events(limit=10)]
    assert "DrillStarted" in reasons and "DrillEnded" in reasons
    actions = [e.action for e in governed.store.audit_log(limit=10)]
    assert "drill.start" in actions and "drill.end" in actions


def test_bad_drills_are_refused_with_a_reason(governed: Governed) -> None:
    headers = governed.token("admin")
    for body in ({"cluster": "west", "seconds": 1}, {"cluster": "west", "kind": "meteor"}, {}):
        answer = governed.client.post("/api/v1/dashboard/drills", json=body, headers=headers)
        assert answer.status_code == 400, body
        assert answer.json()["error"]
    assert governed.faults.injected() == [] and governed.store.live_faults() == []


def test_the_stream_pushes_the_overview(governed: Governed) -> None:
    headers = governed.token("viewer", "alpha")
    with governed.client.stream("GET", "/api/v1/dashboard/stream", headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        event = next(line for line in lines if line.startswith("event: "))
        data = next(lines)
    assert event == "event: overview"
    view = json.loads(data.removeprefix("data: "))
    assert [s["name"] for s in view["services"]] == ["alpha-svc"]


def test_the_page_is_served_at_the_root_with_a_strict_policy(governed: Governed) -> None:
    page = governed.client.get("/")
    assert page.status_code == 200
    assert "<title>polycloud" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    script = governed.client.get("/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert governed.client.get("/vendor/land-110m.json").json()["type"] == "Topology"
    assert governed.client.get("/api/v1/nothing-here").json() == {"error": "Not Found"}


def test_a_drill_ends_on_time_even_if_its_server_dies(governed: Governed) -> None:
    """The fault carries its end: whichever leader runs then takes it back, timer or not."""
    answer = governed.client.post(
        "/api/v1/dashboard/drills", json={"cluster": "west", "seconds": 2}, headers=governed.token("admin")
    )
    assert answer.status_code == 202
    (fault,) = governed.store.live_faults()
    assert fault.until is not None and fault.applied_at is not None
    successor = FaultLog(governed.store)  # a new leader, after the server with the timer died
    successor.wake()
    assert successor.carried("west") == [Fault(kind="down")]
    wait_until(lambda: not successor.wake() and not successor.carried("west"), what="the drill to end")
