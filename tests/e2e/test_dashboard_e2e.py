"""The web dashboard as a person uses it, in headless Chromium against a real control plane.

One fleet (three private sites far apart, three services, one of them active-active with traffic from
Lisbon and Dallas, so that the map draws traffic arcs, and an LLM service on the built-in runtime, spoken
to with streamed OpenAI chat completions), with steady load through the gateway so that every figure is
live. The checks log in with the address `polycloud dashboard` prints, check the
single-use code, the login form and a viewer's read-only page, find every cluster and service of
`polycloud status --json` and a service's lineage, run an outage drill from the incidents view and
watch the map change without a reload, see the LLM service's tokens per second and time to first
token in the services and traffic views, open every view without a console error (saving a screenshot
of each under `.artifacts/dashboard/`), and check the page's security headers, cookie and logout.

The checks are subtests of one test: under `pytest -n 2` a module's tests may land on both workers, and
each would start a fleet of its own (`--dist loadgroup` cannot keep them together: pytest-xdist 3.8 marks
groups by rewriting `item._nodeid`, which pytest 9 no longer reads).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright
from tests.e2e.browser import PageProblems, launch
from tests.e2e.conftest import IRIS_MODEL, ROOT, Polycloud

from polycloud.serving.llm import lm

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / ".artifacts" / "dashboard"
VIEWS = ("map", "services", "traffic", "incidents", "cost", "flags", "lineage", "audit")
SITES = {  # name: (lat, lon, jurisdiction)
    "frankfurt": (50.11, 8.68, "EU"),
    "ashburn": (39.04, -77.49, "US"),
    "tokyo": (35.68, 139.69, "JP"),
}
ACTIVE_ACTIVE = "vision"
"""Active-active over frankfurt and ashburn; its Lisbon traffic is served from frankfurt until it fails."""
DRILLED, OTHER = "frankfurt", "ashburn"
SERVICES = {ACTIVE_ACTIVE: (DRILLED, OTHER), "speech": ("ashburn",), "ranker": ("tokyo",)}
LLM, LLM_CLUSTER = "chat", "tokyo"
"""An LLM service (protocol openai, the built-in runtime): its figures are tokens and time to first token."""
ALL_SERVICES = {*SERVICES, LLM}
LLM_CORPUS = ["The gateway streams every answer token by token to the client that asked for it. " * 8]
CHAT_BODY = {
    "model": LLM,
    "messages": [{"role": "user", "content": "How does the gateway stream an answer?"}],
    "max_tokens": 8,
    "stream": True,
}
LOAD_RPS = 20.0
SAMPLE = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
INFER_BODY = {"inputs": [SAMPLE]}

UI_TIMEOUT_MS = 20_000
"""How long a page may take to show what the fleet already is (a hang guard, not a target)."""
FLEET_TIMEOUT_MS = 60_000
"""How long a change of the fleet (a drill's outage, its recovery) may take to show on the map."""


def _documents(model: Path, language_model: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for index, (name, (lat, lon, jurisdiction)) in enumerate(SITES.items()):
        spec = {
            "provider": name,
            "region": "dc1",
            # Far apart on the map, but a small simulated delay: the load must not crawl.
            "driver": {"type": "local", "delayMs": 2},
            "location": {"lat": lat, "lon": lon, "jurisdiction": jurisdiction},
            "instances": [{"name": "cpu-node", "vcpus": 16, "memoryGiB": 64, "hourlyUSD": 0.5 + index / 10}],
        }
        docs.append(_doc("Cluster", {"name": name}, spec))
    for name, clusters in SERVICES.items():
        service: dict[str, Any] = {
            "model": {"path": str(model)},
            "resources": {"vcpus": 1, "memoryGiB": 1},
            "replicas": 1,
            "pattern": "active-active" if len(clusters) == 2 else "single",
            "placement": {"clusters": list(clusters)},
        }
        if len(clusters) == 2:
            service["traffic"] = [
                # Far enough from both clusters that the arcs show beside the circles on the map.
                {"location": {"lat": 38.72, "lon": -9.14}, "share": 0.5},  # Lisbon: nearest is frankfurt
                {"location": {"lat": 32.78, "lon": -96.8}, "share": 0.5},  # Dallas: nearest is ashburn
            ]
        labels = {"team": "vision" if name == ACTIVE_ACTIVE else "speech"}
        docs.append(_doc("Service", {"name": name, "labels": labels}, service))
    chat = {
        "protocol": "openai",
        "model": {"path": str(language_model)},
        "resources": {"vcpus": 1, "memoryGiB": 1},
        "replicas": 1,
        "placement": {"clusters": [LLM_CLUSTER]},
    }
    docs.append(_doc("Service", {"name": LLM, "labels": {"team": "speech"}}, chat))
    return docs


def _doc(kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "polycloud/v1", "kind": kind, "metadata": metadata, "spec": spec}


class Load(threading.Thread):
    """Requests through the gateway at about LOAD_RPS, spread over the services (streamed chat
    completions for the LLM service), until `stop`."""

    def __init__(self, gateway: str) -> None:
        super().__init__(name="dashboard-load", daemon=True)
        self.gateway = gateway
        self.sent = 0
        self.ok = 0
        self._halt = threading.Event()

    def run(self) -> None:
        names = [*SERVICES, LLM]
        with httpx.Client(base_url=self.gateway, timeout=5.0, trust_env=False) as client:
            next_at = time.monotonic()
            while not self._halt.is_set():
                name = names[self.sent % len(names)]
                try:
                    if name == LLM:  # the whole event stream is read: the gateway meters its tokens
                        answer = client.post("/v1/chat/completions", json=CHAT_BODY)
                    else:
                        answer = client.post(f"/v2/models/{name}/infer", json=INFER_BODY)
                    self.ok += answer.status_code == 200
                except httpx.HTTPError:
                    pass  # a drilled cluster: the gateway's problem to route around, not the load's
                self.sent += 1
                next_at += 1.0 / LOAD_RPS
                self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


@dataclass
class Dashboard:
    polycloud: Polycloud
    api_url: str
    browser: Browser
    load: Load

    def login_address(self) -> str:
        """What `polycloud dashboard --no-browser --json` prints: the page's address with a login code."""
        printed = json.loads(self.polycloud.ok("dashboard", "--no-browser", "--json").stdout)
        assert printed["expiresInS"] > 0
        return str(printed["url"])

    @contextmanager
    def page(self) -> Iterator[tuple[BrowserContext, Page, PageProblems]]:
        """A fresh browser profile (no cookie) and a page in it, watched for errors; closed afterwards."""
        context = self.browser.new_context(viewport={"width": 1440, "height": 900})
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())  # a "really run the drill?" confirmation
            yield context, page, PageProblems().watch(page)
        finally:
            context.close()

    @contextmanager
    def logged_in(self) -> Iterator[tuple[BrowserContext, Page, PageProblems]]:
        """A page logged in as the admin, with the live stream open."""
        with self.page() as (context, page, problems):
            page.goto(self.login_address())
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            yield context, page, problems


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    root = tmp_path_factory.mktemp("dashboard")
    pc = Polycloud(root)
    load: Load | None = None
    try:
        model = Path(shutil.copy(IRIS_MODEL, root / "iris.onnx"))
        language_model = root / "tiny-lm.json"
        language_model.write_bytes(lm.dumps(lm.train(LLM_CORPUS)))
        fleet = root / "fleet.yaml"
        fleet.write_text(yaml.safe_dump_all(_documents(model, language_model), sort_keys=False))
        pc.ok("apply", fleet, "--yes")
        info = pc.runinfo()
        assert info is not None
        load = Load(info["gateway_url"])
        load.start()

        def busy() -> bool:
            overview = pc.api().get("/dashboard/overview").json()
            return all(s["rps"] > 0 for s in overview["services"])

        pc.eventually(busy, "the gateway's load reports to show traffic on every service")
        expect.set_options(timeout=UI_TIMEOUT_MS)
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                yield Dashboard(pc, str(info["api_url"]), browser, load)
            finally:
                browser.close()
    finally:
        if load is not None:
            load.stop()
        errors = pc.close()
    if errors:
        pytest.fail("teardown:\n  " + "\n  ".join(errors))


def _open(page: Page, view: str) -> None:
    """Click the view's tab and wait until it has rendered its data."""
    page.locator(f'#tabs a[data-view="{view}"]').click()
    expect(page.locator(f'section.view[data-view="{view}"]')).to_have_attribute("data-ready", "1")


def _names(page: Page, selector: str, attribute: str) -> set[str]:
    return {str(e.get_attribute(attribute)) for e in page.locator(selector).all()}


def _absent_or_disabled(controls: Locator) -> bool:
    """What a viewer's page must do with a control that changes the fleet."""
    return all(c.is_disabled() for c in controls.all())


def login_codes_work_once_and_a_viewer_sees_everything_but_changes_nothing(dashboard: Dashboard) -> None:
    address = dashboard.login_address()
    with dashboard.page() as (_, page, _), dashboard.page() as (_, again, _):
        page.goto(address)
        expect(page.locator("#who")).to_contain_text("admin · admin")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        assert "login=" not in page.url, page.url

        # The same address again, in another browser: the code is spent.
        again.goto(address)
        expect(again.locator("#login")).to_be_visible()
        expect(again.locator("#login-error")).not_to_be_empty()
        assert "login=" not in again.url

        # A token typed into the form logs in; a viewer's.
        viewer = json.loads(dashboard.polycloud.ok("token", "create", "--role", "viewer", "--json").stdout)
        again.locator("#login-token").fill(viewer["token"])
        again.locator("#login-form button[type=submit]").click()
        expect(again.locator("#who")).to_contain_text("· viewer")
        expect(again.locator("#login")).to_be_hidden()
        expect(again.locator("#live")).to_have_attribute("data-state", "live")

        _open(again, "map")
        expect(again.locator("svg circle.cluster")).to_have_count(len(SITES))
        assert _names(again, "svg circle.cluster", "data-cluster") == set(SITES)
        _open(again, "services")
        expect(again.locator("tr[data-service]:not(.detail)")).to_have_count(len(ALL_SERVICES))
        assert _names(again, "tr[data-service]:not(.detail)", "data-service") == ALL_SERVICES
        again.locator(f'tr[data-service="{ACTIVE_ACTIVE}"]:not(.detail)').click()
        detail = again.locator(f'tr.detail[data-service="{ACTIVE_ACTIVE}"]')
        expect(detail).to_be_visible()
        expect(detail.get_by_role("button", name="Explain placement")).to_be_visible()
        assert _absent_or_disabled(detail.locator("button", has_text="Roll back"))
        _open(again, "incidents")
        assert _absent_or_disabled(again.locator("form#drill button", has_text="Run drill"))

        # Whatever the page offers, the API itself refuses a viewer's drill.
        refused = again.request.post(
            f"{dashboard.api_url}/api/v1/dashboard/drills",
            data={"cluster": DRILLED, "kind": "outage", "seconds": 5},
            headers={"x-polycloud-dashboard": "1"},
        )
        assert refused.status == 403, refused.text()


def every_cluster_and_service_of_the_fleet_is_on_the_page(dashboard: Dashboard) -> None:
    status = dashboard.polycloud.status()
    services = {s["name"] for s in status["services"]}
    clusters = {c["cluster"] for s in status["services"] for c in s["clusters"]}
    assert services == ALL_SERVICES and clusters == set(SITES)

    with dashboard.logged_in() as (_, page, problems):
        _open(page, "map")
        expect(page.locator("svg circle.cluster")).to_have_count(len(clusters))
        assert _names(page, "svg circle.cluster", "data-cluster") == clusters
        assert _names(page, "table.clusters tr[data-cluster]", "data-cluster") == clusters
        for name in clusters:
            circle = page.locator(f'svg circle.cluster[data-cluster="{name}"]')
            expect(circle).to_have_attribute("data-health", "up")
            expect(page.locator(f'table.clusters tr[data-cluster="{name}"]')).to_contain_text("up")
        lisbon = f'path.arc.traffic[data-service="{ACTIVE_ACTIVE}"][data-to="{DRILLED}"]'
        expect(page.locator(lisbon).first).to_be_attached()
        expect(page.locator("#summary")).to_contain_text(f"services {len(services)}")
        expect(page.locator("#control-plane")).to_contain_text("1 servers")  # up: one server, leading
        expect(page.locator("#control-plane")).to_contain_text("1 gateways")
        expect(page.locator("#control-plane .chip.down")).to_have_count(0)

        _open(page, "services")
        expect(page.locator("tr[data-service]:not(.detail)")).to_have_count(len(services))
        assert _names(page, "tr[data-service]:not(.detail)", "data-service") == services

        # A service's lineage, from its row: the recorder's rollouts of it, on the clusters it runs on.
        dashboard.polycloud.eventually(lambda: _rolled_out(dashboard, ACTIVE_ACTIVE), "its rollouts recorded")
        page.locator(f'tr[data-service="{ACTIVE_ACTIVE}"]:not(.detail)').click()
        page.locator(f'tr.detail[data-service="{ACTIVE_ACTIVE}"]').get_by_role("link", name="Lineage").click()
        expect(page.locator("#view-lineage")).to_have_attribute("data-traced", ACTIVE_ACTIVE)
        graph = page.locator("#view-lineage svg.lineage-graph")
        expect(graph.locator('g.node[data-kind="service-rollout"][data-root="yes"]')).to_have_count(2)
        assert _names(page, '#view-lineage g.node[data-kind="cluster"]', "data-id") == {
            f"cluster:{c}" for c in SERVICES[ACTIVE_ACTIVE]
        }
        assert problems.all() == []


def _rolled_out(dashboard: Dashboard, service: str) -> bool:
    """Whether the lineage recorder has kept a finished rollout of `service` to each of its clusters."""
    answer = dashboard.polycloud.api().get(f"/lineage/{service}")
    if answer.status_code != 200:
        return False
    done = {n["cluster"] for n in answer.json()["nodes"] if n.get("state") == "COMPLETE"}
    return done == set(SERVICES[service])


def a_drill_from_the_incidents_view_shows_on_the_map_without_a_reload(dashboard: Dashboard) -> None:
    with dashboard.logged_in() as (_, page, problems):
        drilled = page.locator(f'svg circle.cluster[data-cluster="{DRILLED}"]')
        arcs = f'path.arc.traffic[data-service="{ACTIVE_ACTIVE}"]'
        _open(page, "map")
        expect(drilled).to_have_attribute("data-health", "up")
        expect(page.locator(f'{arcs}[data-to="{DRILLED}"]').first).to_be_attached()
        page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

        _open(page, "incidents")
        form = page.locator("form#drill")
        form.locator("select[name=cluster]").select_option(DRILLED)
        form.locator("select[name=kind]").select_option("outage")
        form.locator("input[name=seconds]").fill("15")
        with page.expect_response(lambda r: r.url.endswith("/api/v1/dashboard/drills")) as started:
            form.get_by_role("button", name="Run drill").click()
        assert started.value.status == 202, started.value.text()

        _open(page, "map")
        expect(drilled).to_have_attribute("data-health", "down", timeout=FLEET_TIMEOUT_MS)
        # The Lisbon traffic moves to the surviving cluster: no arc of the service ends at the dead one.
        expect(page.locator(f'{arcs}[data-to="{DRILLED}"]')).to_have_count(0, timeout=FLEET_TIMEOUT_MS)
        expect(page.locator(f'{arcs}[data-to="{OTHER}"]').first).to_be_attached()
        expect(page.locator(f'table.clusters tr[data-cluster="{DRILLED}"]')).to_contain_text("down")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "map-during-drill.png"), full_page=True)

        # The drill ends by itself after 15 s; the reconciler restarts the replica.
        expect(drilled).to_have_attribute("data-health", "up", timeout=FLEET_TIMEOUT_MS)
        expect(page.locator(f'{arcs}[data-to="{DRILLED}"]').first).to_be_attached(timeout=FLEET_TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert problems.all() == []


def an_llm_services_tokens_per_second_and_time_to_first_token_are_shown(dashboard: Dashboard) -> None:
    not_zero = re.compile(r"(?<![\d.,])(?!0 )\d[\d,.]* tok/s")
    with dashboard.logged_in() as (_, page, problems):
        _open(page, "services")
        row = page.locator(f'tr.service[data-service="{LLM}"]')
        expect(row).to_contain_text("LLM · openai")
        expect(row.locator("td.tokens")).to_contain_text(not_zero, timeout=FLEET_TIMEOUT_MS)
        expect(row.locator("td.tokens")).to_contain_text("today")
        expect(row.locator(".ttft")).to_have_count(2)  # p50 and p99 are times to first token
        expect(page.locator(f'tr.service[data-service="{ACTIVE_ACTIVE}"] td.tokens')).to_have_text("—")
        row.click()
        tokens = page.locator(f'tr.detail[data-service="{LLM}"] table.llm-tokens')
        expect(tokens).to_contain_text("TTFT p99")
        expect(tokens.locator(f'tr[data-cluster="{LLM_CLUSTER}"]')).to_be_visible()
        expect(tokens.locator(f'tr[data-cluster="{LLM_CLUSTER}"] td.itl')).to_contain_text(" ms")  # streamed

        _open(page, "traffic")
        page.locator("#traffic-scope").select_option(LLM)
        ttft = page.locator('.charts [data-figure="ttft"]')
        expect(ttft.locator("h3")).to_have_text(f"Time to first token p50 / p99 (ms) — {LLM}")
        expect(ttft).to_contain_text(f"{LLM} TTFT p99")  # the legend
        chart = page.locator('.charts [data-figure="tokens"]')
        expect(chart.locator("h3")).to_have_text(f"Tokens per second — {LLM}")
        expect(chart).to_contain_text(f"{LLM} completion")
        expect(page.locator(f'.slo tr[data-slo="{LLM}"]')).to_contain_text("TTFT")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "traffic-llm.png"), full_page=True)
        assert problems.all() == []


def every_view_renders_without_errors(dashboard: Dashboard) -> None:
    """Also saves a full-page screenshot of each view, for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[str]] = {}
    with dashboard.logged_in() as (_, page, problems):
        for view in VIEWS:
            _open(page, view)
            expect(page.locator(f'section.view[data-view="{view}"]')).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / f"{view}.png"), full_page=True)
            if problems.all():
                found[view] = problems.all()
                problems.clear()
    assert found == {}, json.dumps(found, indent=2)


def security_headers_cookie_and_logout(dashboard: Dashboard) -> None:
    page_response = httpx.get(f"{dashboard.api_url}/", timeout=30, trust_env=False)
    assert page_response.status_code == 200
    policy = page_response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "script-src 'self'" in policy, policy

    with dashboard.logged_in() as (context, page, _):
        [cookie] = [c for c in context.cookies() if c["name"] == "polycloud_session"]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict", cookie
        assert page.evaluate("document.cookie") == ""  # out of reach of the page's scripts

        codes = f"{dashboard.api_url}/api/v1/session/codes"  # a harmless change: a new login code
        refused = context.request.post(codes, data={})
        assert refused.status == 401, refused.text()
        assert "x-polycloud-dashboard" in refused.text()
        allowed = context.request.post(codes, data={}, headers={"x-polycloud-dashboard": "1"})
        assert allowed.status == 201, allowed.text()

        page.locator("#logout").click()
        expect(page.locator("#login")).to_be_visible()
        old = {"cookie": f"polycloud_session={cookie['value']}"}
        after = httpx.get(f"{dashboard.api_url}/api/v1/session", headers=old, timeout=30, trust_env=False)
        assert after.status_code == 401, after.text


CHECKS: list[Callable[[Dashboard], None]] = [
    login_codes_work_once_and_a_viewer_sees_everything_but_changes_nothing,
    every_cluster_and_service_of_the_fleet_is_on_the_page,
    a_drill_from_the_incidents_view_shows_on_the_map_without_a_reload,
    an_llm_services_tokens_per_second_and_time_to_first_token_are_shown,
    every_view_renders_without_errors,  # after the drill: the incidents and audit views have more to show
    security_headers_cookie_and_logout,
]


@pytest.mark.timeout(600)  # one fleet and five browser sessions: a hang guard, not a target
def test_the_dashboard_as_a_person_uses_it(dashboard: Dashboard, subtests: pytest.Subtests) -> None:
    for check in CHECKS:
        with subtests.test(check.__name__.replace("_", " ")):
            check(dashboard)
