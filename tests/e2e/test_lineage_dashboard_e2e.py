"""The dashboard's Lineage view in headless Chromium against a real control plane whose store holds a
recorded lineage (tests/controller/lineage_story.py, written into its database: no training needed).

Opened at #/lineage/<dataset>, the graph has the dataset, the job runs, the model, the service rollouts
and the clusters they served on, edges with their costs and the table of edges under it; the search box
suggests every traced name; a node's details trace from it; and a name without lineage says so, without
an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from tests.controller.lineage_story import DIGEST, SITES, Story, seed
from tests.e2e.browser import PageProblems, launch
from tests.e2e.conftest import ROOT, Polycloud

from polycloud.state import Store

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / ".artifacts" / "dashboard"
UI_TIMEOUT_MS = 20_000
"""How long the page may take to show what the store already holds (a hang guard, not a target)."""


@pytest.fixture
def seeded(polycloud: Polycloud) -> Story:
    polycloud.ok("up", "--detach")
    with Store.open(f"sqlite:///{polycloud.home / 'state.db'}") as store:
        return seed(store)


@pytest.fixture
def page(polycloud: Polycloud, seeded: Story) -> Iterator[tuple[Page, PageProblems]]:
    printed = json.loads(polycloud.ok("dashboard", "--no-browser", "--json").stdout)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            opened = context.new_page()
            problems = PageProblems().watch(opened)
            opened.goto(str(printed["url"]))
            expect(opened.locator("#who")).to_contain_text("admin")
            yield opened, problems
        finally:
            browser.close()


def trace(page: Page, name: str) -> None:
    """Open #/lineage/NAME as a link would, and wait until the view has answered for it."""
    page.evaluate("hash => { location.hash = hash; }", f"#/lineage/{quote(name, safe='')}")
    expect(page.locator("#view-lineage")).to_have_attribute("data-traced", name)


@pytest.mark.timeout(120)
def test_the_lineage_of_a_dataset_is_drawn_with_its_costs(
    page: tuple[Page, PageProblems], seeded: Story
) -> None:
    browser, problems = page
    trace(browser, seeded.dataset)
    graph = browser.locator("#view-lineage svg.lineage-graph")
    expect(graph).to_have_attribute("role", "img")
    expect(graph).to_have_attribute(
        "aria-label", f"Lineage of {seeded.dataset}: 11 nodes and 11 edges, listed in the tables below"
    )
    nodes = graph.locator("g.node")
    kinds = {
        k: nodes.and_(browser.locator(f'[data-kind="{k}"]'))
        for k in ("dataset", "job-run", "model", "service-rollout", "cluster")
    }
    expect(kinds["dataset"]).to_have_count(1)
    expect(kinds["dataset"]).to_have_attribute("data-root", "yes")
    expect(kinds["dataset"]).to_contain_text(seeded.dataset)
    expect(kinds["job-run"]).to_have_count(3)
    states = {str(g.get_attribute("data-state")) for g in kinds["job-run"].all()}
    assert states == {"COMPLETE", "FAIL", "RUNNING"}
    expect(kinds["model"]).to_have_count(1)
    expect(kinds["model"]).to_contain_text(f"sha256:{DIGEST[:12]}")
    expect(kinds["service-rollout"]).to_have_count(3)
    expect(kinds["service-rollout"].and_(browser.locator('[data-state="ABORT"]'))).to_have_count(1)
    expect(kinds["cluster"]).to_have_count(2)
    for cluster in ("aws-use1", "gcp-euw4"):
        where = SITES[cluster]
        node = kinds["cluster"].filter(has_text=cluster)
        expect(node).to_contain_text(f"{where['provider']}/{where['region']} · {where['jurisdiction']}")

    # Columns left to right: dataset → job runs → model → rollouts → clusters.
    left = {
        k: min(float(box["x"]) for box in (g.bounding_box() for g in v.all()) if box)
        for k, v in kinds.items()
    }
    assert sorted(left, key=left.__getitem__) == ["dataset", "job-run", "model", "service-rollout", "cluster"]

    edges = graph.locator("g.edge")
    expect(edges.and_(browser.locator('[data-kind="read"]')).filter(has_text="read $0.23")).to_have_count(1)
    expect(edges.and_(browser.locator('[data-kind="wrote"]')).filter(has_text="wrote $0.0125")).to_have_count(
        1
    )
    expect(edges.and_(browser.locator('[data-kind="served"]'))).to_have_count(3)
    expect(edges.and_(browser.locator('[data-kind="on"]'))).to_have_count(3)
    assert graph.locator("marker#lineage-arrow").count() == 1

    table = browser.locator("#view-lineage table.lineage-edges")
    expect(table.locator("tbody tr")).to_have_count(11)
    read = table.locator('tr[data-kind="read"]').filter(has_text="$0.23")
    expect(read).to_contain_text(f"dataset {seeded.dataset}")
    expect(read).to_contain_text(f"job run {seeded.job} r2 attempt 1")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(path=str(ARTIFACTS / "lineage.png"), full_page=True)

    # Details of a node on hover, and a trace from it.
    kinds["model"].hover()
    details = browser.locator("#view-lineage aside.lineage-details")
    expect(details.locator("dd").filter(has_text=DIGEST)).to_have_count(1)
    details.get_by_role("link", name="Trace from here").click()
    expect(browser.locator("#view-lineage")).to_have_attribute("data-traced", f"sha256:{DIGEST}")
    expect(graph.locator('g.node[data-kind="model"]')).to_have_attribute("data-root", "yes")
    assert problems.all() == []


@pytest.mark.timeout(120)
def test_the_search_box_suggests_and_a_name_without_lineage_says_so(
    page: tuple[Page, PageProblems], seeded: Story
) -> None:
    browser, problems = page
    browser.locator('#tabs a[data-view="lineage"]').click()
    view = browser.locator("#view-lineage")
    expect(view).to_have_attribute("data-ready", "1")
    suggested = {o.get_attribute("value") for o in view.locator("datalist#lineage-names option").all()}
    assert suggested >= {seeded.dataset, seeded.job, seeded.service, f"sha256:{DIGEST}"}
    service = view.locator('.lineage-choices[data-kind="service"]')
    expect(service.get_by_role("link", name=seeded.service, exact=True)).to_be_visible()

    trace(browser, "no-such-thing")
    expect(view.locator('[data-role="empty"]')).to_contain_text("Nothing by that name has lineage")
    expect(view.locator('[data-role="drawn"]')).to_be_hidden()
    expect(browser.locator("#toast")).to_be_hidden()

    # Typed into the search box with a depth: the address carries both.
    browser.locator("#lineage-name").fill(seeded.service)
    browser.locator("#lineage-depth").fill("1")
    browser.get_by_role("button", name="Trace").click()
    expect(view).to_have_attribute("data-traced", seeded.service)
    assert browser.url.endswith(f"#/lineage/{seeded.service}?depth=1")
    expect(view.locator("svg g.node[data-kind='model']")).to_have_count(1)
    expect(view.locator("svg g.node[data-kind='job-run']")).to_have_count(0)  # two steps away
    assert [p for p in problems.all() if "404" not in p] == []
