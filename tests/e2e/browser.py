"""Headless Chromium for the dashboard's browser tests and benchmark.

Always Debian's Chromium (`apt-get install chromium`, which `make browser` does), never a browser that
Playwright would download: nothing outside the package registries can be fetched here. Playwright's
Python package brings only its driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it does not get
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium reaches for Google's services at start, and the network here is closed.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Playwright) -> Browser:
    """Start headless Chromium; a missing browser is an error that says how to install it, never a skip."""
    if not CHROMIUM.is_file():
        raise RuntimeError(
            f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's Chromium "
            "(run `make browser`, or `apt-get install -y chromium` as root)"
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@dataclass
class PageProblems:
    """Console errors and uncaught exceptions of one page, as they happen."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> PageProblems:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_error)
        return self

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.console.append(f"{message.text} ({where}:{message.location.get('lineNumber', '?')})")

    def _on_error(self, error: Error) -> None:
        self.exceptions.append(f"{error.name}: {error.message}\n{error.stack or ''}".strip())

    def all(self) -> list[str]:
        return [f"console: {c}" for c in self.console] + [f"exception: {e}" for e in self.exceptions]

    def clear(self) -> None:
        self.console.clear()
        self.exceptions.clear()
