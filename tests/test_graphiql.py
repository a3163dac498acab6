"""GraphiQL works offline: `propintel serve` (dev profile) in a process of its own, opened in
Debian's Chromium (headless, through Playwright; scripts/test installs the `chromium` package
when it is missing, Playwright downloads no browser of its own). The page renders the editor,
runs a typed query against the server and shows its answer, with every request to our own
origin and nothing on the console. Also: the page's CSP, and the 503 without the assets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, Request, sync_playwright
from starlette.applications import Starlette
from starlette.routing import Route

from app.asgi import create_app
from app.http.graphiql import ASSETS_DIR, PREFIX, graphiql_assets, graphiql_page, installed
from app.http.headers import graphiql_csp
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.live import live_server
from tests.support.prod import prod_settings

QUERY = "{ localities(first: 2) { nodes { name } } }"
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
RESPONSE = ".graphiql-response .CodeMirror"


@pytest.fixture(scope="module")
def server(postgres_url: str) -> Iterator[str]:
    if not installed():
        pytest.fail(f"GraphiQL's assets are not installed in {ASSETS_DIR}: run scripts/bootstrap")
    env = {
        "DATABASE_URL": postgres_url,
        "PROPINTEL_PROFILE": "dev",
        "PROPINTEL_CACHE_WARM": "0",
        "PROPINTEL_INITIAL_LOAD": "none",
    }
    with live_server(env) as base:
        yield base


def test_the_page_loads_only_our_assets_under_its_csp(server: str) -> None:
    page = httpx.get(f"{server}/graphql", headers={"accept": "text/html"}, timeout=10)
    assert page.status_code == 200, page.text
    nonce = re.search(r'<meta property="csp-nonce" nonce="([^"]+)">', page.text)
    assert nonce is not None, page.text
    assert page.headers["content-security-policy"] == graphiql_csp(nonce[1])
    again = httpx.get(f"{server}/graphql", headers={"accept": "text/html"}, timeout=10)
    assert nonce[1] not in again.text, "the same nonce twice"
    assert "<style" not in page.text
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None, "an inline script"
    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert urls
    assert all(url.startswith(f"{PREFIX}/") for url in urls), urls
    for url in urls:
        asset = httpx.get(f"{server}{url}", timeout=10)
        assert asset.status_code == 200, url
    script = httpx.get(f"{server}{PREFIX}/graphiql/graphiql.min.js", timeout=10)
    assert script.headers["content-type"].startswith("text/javascript")
    cached = httpx.get(
        f"{server}{PREFIX}/graphiql/graphiql.min.js",
        headers={"if-none-match": script.headers["etag"]},
        timeout=10,
    )
    assert cached.status_code == 304
    assert httpx.get(f"{server}{PREFIX}/graphiql/nope.js", timeout=10).status_code == 404
    assert httpx.get(f"{server}{PREFIX}/other/package.json", timeout=10).status_code == 404


def test_graphiql_runs_a_typed_query_offline(server: str) -> None:
    expected = httpx.post(f"{server}/graphql", json={"query": QUERY}, timeout=10).json()["data"]
    assert len(expected["localities"]["nodes"]) == 2, expected
    requests: list[str] = []
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            problems.append(f"console {message.type}: {message.text}")

    def on_page_error(error: Error) -> None:
        problems.append(f"page error: {error}")

    def on_request(request: Request) -> None:
        requests.append(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            page.on("request", on_request)
            page.goto(f"{server}/graphql", wait_until="load")
            editor = page.locator(QUERY_EDITOR)
            editor.wait_for(state="visible", timeout=15_000)
            # The schema arrived (introspection): the Docs explorer can open it.
            page.wait_for_function(
                "() => !document.querySelector('.graphiql-spinner')", timeout=15_000
            )
            editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.press("Delete")
            page.keyboard.type(QUERY)
            page.keyboard.press("Escape")  # closes an open completion list, if any
            assert _value(page, QUERY_EDITOR) == QUERY
            page.keyboard.press("Control+Enter")
            page.wait_for_function(
                f"() => document.querySelector({json.dumps(RESPONSE)})"
                ".CodeMirror.getValue().includes('localities')",
                timeout=15_000,
            )
            shown = json.loads(_value(page, RESPONSE))
            # A dialog inserts a <style> element: admitted by the page's nonce, no CSP error.
            page.get_by_role("button", name="Open settings dialog").click()
            page.get_by_role("dialog").wait_for(state="visible", timeout=5_000)
            page.keyboard.press("Escape")
            page.get_by_role("dialog").wait_for(state="hidden", timeout=5_000)
        finally:
            browser.close()
    assert shown["data"] == expected, shown
    assert requests
    foreign = [url for url in requests if not url.startswith(f"{server}/")]
    assert foreign == [], f"requests that left the origin: {foreign}"
    assert problems == [], "\n".join(problems)


def _value(page: Page, selector: str) -> str:
    """The text of the CodeMirror editor at `selector`."""
    value = page.evaluate(
        f"() => document.querySelector({json.dumps(selector)}).CodeMirror.getValue()"
    )
    assert isinstance(value, str)
    return value


async def test_without_the_assets_graphiql_answers_503(tmp_path: Path) -> None:
    empty = tmp_path / "graphiql"
    (empty / "public").mkdir(parents=True)
    page = graphiql_page(empty)
    assert page.status_code == 503
    assert b"scripts/bootstrap" in page.body
    app = Starlette(routes=[Route("/page", lambda _: graphiql_page(empty)), graphiql_assets(empty)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(f"{PREFIX}/graphiql/graphiql.min.js")
        assert response.status_code == 503
        assert "scripts/bootstrap" in response.text
        shown = await client.get("/page")
        assert shown.status_code == 503
        assert shown.headers["content-type"].startswith("text/html")


def test_prod_serves_no_graphiql_assets(postgres_url: str) -> None:
    app = create_app(prod_settings(postgres_url))
    paths = [getattr(route, "path", "") for route in app.routes]
    assert "/graphql" in paths
    assert not any(path.startswith("/graphiql") for path in paths), paths
