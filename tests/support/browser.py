"""Debian's Chromium through Playwright (no browser download: scripts/test installs the
`chromium` package when it is missing), axe-core's accessibility check, and where the browser
tests keep their screenshots."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    sync_playwright,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
"""Screenshots and the like (gitignored): kept after the run for a person to look at."""
AXE = ROOT / "web" / "app" / "node_modules" / "axe-core" / "axe.min.js"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch_problems(page: Page, problems: list[str]) -> None:
    """Console errors and warnings (a CSP violation is one) and uncaught errors, into
    `problems`."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            problems.append(f"{page.url}: console {message.type}: {message.text}")

    def on_page_error(error: Error) -> None:
        problems.append(f"{page.url}: page error: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)


def serious_axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now.

    axe is evaluated through the DevTools protocol rather than a <script> element: the app's
    CSP admits no inline script (that is the point), and the check must not loosen it."""
    if not AXE.is_file():
        raise AssertionError(f"{AXE} is missing: run scripts/bootstrap (npm ci in web/app)")
    page.evaluate(AXE.read_text())
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 3).map(n => n.html)}))"""
    )
    return violations
