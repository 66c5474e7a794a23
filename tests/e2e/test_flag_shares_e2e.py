"""Flag shares end to end: a 30/70 fractional flag evaluated over OFREP (single and bulk) for many
targeting keys at the real gateway, counted there per window, written to the real store with the load
reports, served by GET /api/v1/flags (and `polycloud flags list`) and drawn by the dashboard's Flags tab
in headless Chromium; then the kill switch (`polycloud flags disable`) shows there as DISABLED.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from tests.e2e.browser import PageProblems, launch
from tests.e2e.conftest import ROOT, Polycloud
from tests.e2e.test_flags_e2e import write

pytestmark = pytest.mark.e2e

FLAG = "new-ranker"
"""30 % "on", 70 % "off" by targeting key (outside region eu), from `test_flags_e2e.flags`."""
SINGLE_KEYS, BULK_KEYS = 600, 400
UI_TIMEOUT_MS = 20_000
ARTIFACTS = ROOT / ".artifacts" / "dashboard"


def evaluate(http: httpx.Client) -> Counter[str]:
    """Evaluate the flag once per targeting key, one flag at a time and in bulk; its variants."""
    variants: Counter[str] = Counter()
    for i in range(SINGLE_KEYS):
        answer = http.post(f"/ofrep/v1/evaluate/flags/{FLAG}", json={"context": {"targetingKey": f"k{i}"}})
        assert answer.status_code == 200, answer.text
        variants[answer.json()["variant"]] += 1
    for i in range(SINGLE_KEYS, SINGLE_KEYS + BULK_KEYS):
        bulk = http.post("/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": f"k{i}"}})
        assert bulk.status_code == 200, bulk.text
        variants[next(f["variant"] for f in bulk.json()["flags"] if f["key"] == FLAG)] += 1
    return variants


def test_the_flags_tab_shows_variant_shares_and_the_kill_switch(
    polycloud: Polycloud, tmp_path: Path, model: Path
) -> None:
    fleet, files = write(tmp_path, model)
    polycloud.ok("apply", *files, "--yes")
    gateway = polycloud.expect_exactly(fleet)["gateway"]["url"]
    with httpx.Client(base_url=gateway, trust_env=False, timeout=10) as http:
        variants = evaluate(http)
    total = SINGLE_KEYS + BULK_KEYS
    assert 0.25 * total <= variants["on"] <= 0.35 * total, variants  # well within 3 sigma of 30 %

    # every window's counts reach the store: the API counts exactly what the gateway answered
    def counted() -> dict[str, int] | None:
        [ranker] = [f for f in polycloud.api().get("/flags").json() if f["name"] == FLAG]
        shares = {s["variant"]: s["count"] for s in ranker["evaluations"]["shares"]}
        return shares if ranker["evaluations"]["total"] == total else None

    assert polycloud.eventually(counted, "the gateway's flag counts to reach the store") == dict(variants)

    listed = polycloud.ok("flags", "list").stdout  # the CLI's share column, from the same listing
    assert f"off {variants['off'] / total:.0%} · on {variants['on'] / total:.0%}" in listed, listed

    address = json.loads(polycloud.ok("dashboard", "--no-browser", "--json").stdout)["url"]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = context.new_page()
            problems = PageProblems().watch(page)
            page.goto(address)
            expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=UI_TIMEOUT_MS)
            page.locator('#tabs a[data-view="flags"]').click()
            view = page.locator('section.view[data-view="flags"]')
            expect(view).to_have_attribute("data-ready", "1", timeout=UI_TIMEOUT_MS)

            card = view.locator(f'article.flag[data-flag="{FLAG}"]')
            expect(card).to_have_attribute("data-state", "ENABLED", timeout=UI_TIMEOUT_MS)
            for variant, low, high in (("on", 0.25, 0.35), ("off", 0.65, 0.75)):
                row = card.locator(f'tr[data-variant="{variant}"]')
                expect(row).to_have_attribute("data-count", str(variants[variant]), timeout=UI_TIMEOUT_MS)
                share = float(row.get_attribute("data-share") or "nan")
                assert low <= share <= high, (variant, share)
                expect(row.locator("td").nth(1)).to_have_text(f"{share * 100:.1f} %")
            bar = card.locator(".flag-bar")
            percent = {v: f"{n / total * 100:.1f} %" for v, n in variants.items()}
            label = f"{FLAG}: off {percent['off']}, on {percent['on']}"  # the variants in name order
            expect(bar).to_have_attribute("aria-label", label)
            assert bar.locator("span").count() == 2

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "flags.png"), full_page=True)
            assert "DISABLED" in polycloud.ok("flags", "disable", FLAG).stdout
            expect(card).to_have_attribute("data-state", "DISABLED", timeout=UI_TIMEOUT_MS)
            expect(card.locator('[data-role="state"]')).to_contain_text("DISABLED")
            expect(card.locator(".flag-killed")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "flags-disabled.png"), full_page=True)
            assert not problems.all(), problems.all()
            context.close()
        finally:
            browser.close()
