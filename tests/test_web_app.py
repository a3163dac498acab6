"""The web app (web/app, served by app/http/webapp.py) in Debian's Chromium against
the app served by uvicorn in the prod profile (its strict CSP) on the PostgreSQL slice: search an
address as people type it, pick the suggestion by mouse and by keyboard, see the property
(heading, facts, a price-history chart with one point per sale, the estimate and its 80%
interval), open its suburb (quarterly medians), register, sign in and watch it. axe-core
checks every page (no serious or critical violation); phone and desktop screenshots of each
page are kept under tests/artifacts/web_app/. Also: the caching headers, the JSON answer
of `/` to API clients, and the 503 without a build.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from starlette.applications import Starlette

from app.http.headers import webapp_csp
from app.http.webapp import DIST, IMMUTABLE, built, webapp_routes
from tests.support.browser import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    chromium,
    serious_axe_violations,
    watch_problems,
)
from tests.support.prod import prod_settings
from tests.support.threaded import serving_in_thread

SHOTS = ARTIFACTS / "web_app"
PROPERTY_QUERY = """query($locality: String!) {
  properties(first: 100, filter: {localityName: $locality, isStrata: false}) {
    nodes { id address houseNumber streetName locality { id name }
            sales(first: 1) { totalCount } }
  }
}"""


@pytest.fixture(scope="module")
def server(postgres_url: str, trained_version: int) -> Iterator[str]:
    """`trained_version`: a model is active before the server starts (the estimate)."""
    if not built():
        pytest.fail(f"the web app is not built in {DIST}: run scripts/bootstrap")
    settings = prod_settings(
        postgres_url,
        # The shortest access token: the app renews it (spending the refresh token) 5 s
        # after sign-in, which the watch test waits for.
        PROPINTEL_ACCESS_TTL_S=30,
        PROPINTEL_INITIAL_LOAD="none",
    )
    with serving_in_thread(settings) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nweb app screenshots: {SHOTS}")
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def house(server: str) -> dict[str, Any]:
    """The slice's house with the most sales in Erskineville (ties: the first)."""
    answer = httpx.post(
        f"{server}/graphql",
        json={"query": PROPERTY_QUERY, "variables": {"locality": "ERSKINEVILLE"}},
        timeout=20,
    ).json()
    nodes = answer["data"]["properties"]["nodes"]
    best: dict[str, Any] = max(nodes, key=lambda node: node["sales"]["totalCount"])
    assert best["sales"]["totalCount"] >= 3, best
    return best


def shoot(page: Page, name: str) -> None:
    """Phone and desktop screenshots of the page as it is (then back to desktop)."""
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)  # the chart redraws at the new width
        page.screenshot(path=SHOTS / f"{name}-{label}.png", full_page=True)


def check_accessibility(page: Page) -> None:
    violations = serious_axe_violations(page)
    assert violations == [], f"{page.url}: {violations}"


def typed(address: str) -> str:
    """How a person types it: lower case, street type abbreviated, the suburb's name cut."""
    street, _, rest = address.partition(",")
    street = re.sub(r"\bSTREET\b", "ST", street).lower()
    suburb = rest.split()[0].lower()
    return f"{street} {suburb[: max(3, len(suburb) // 2)]}"


def test_search_opens_the_property_with_its_history_estimate_and_suburb(
    server: str, browser: Browser, house: dict[str, Any]
) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch_problems(page, problems)
    page.goto(server + "/")
    box = page.get_by_role("combobox", name="Search address")
    expect(box).to_be_visible()
    check_accessibility(page)
    box.click()
    box.press_sequentially(typed(house["address"]), delay=20)
    option = page.get_by_role("option").filter(has_text=house["address"]).first
    expect(option).to_be_visible(timeout=10_000)
    expect(box).to_have_attribute("aria-expanded", "true")
    check_accessibility(page)  # with the listbox open
    shoot(page, "1-search")
    option.click()

    expect(page).to_have_url(re.compile(re.escape(f"/property/{house['id']}")))
    expect(page.get_by_role("heading", level=1)).to_have_text(house["address"])
    chart = page.get_by_role("img", name=re.compile(r"^Price history"))
    expect(chart).to_be_visible(timeout=10_000)
    sales = house["sales"]["totalCount"]
    expect(chart).to_have_attribute("data-points", str(sales))
    assert page.locator(".chart canvas").count() == 1
    expect(page.get_by_role("table").filter(has_text="Every recorded sale")).to_be_visible()
    rows = page.get_by_role("table").filter(has_text="Every recorded sale").locator("tbody tr")
    expect(rows).to_have_count(sales)
    estimate = page.get_by_role("region", name="Estimate")
    expect(estimate).to_contain_text(re.compile(r"80% interval: \$[\d,]+ – \$[\d,]+"))
    expect(
        page.get_by_role("region", name="Comparable sales").get_by_role("link")
    ).not_to_have_count(0)
    facts = page.get_by_role("region", name="Facts")
    expect(facts).to_contain_text("Land area")
    expect(page.get_by_role("link", name="Sign in to watch this property")).to_be_visible()
    check_accessibility(page)
    shoot(page, "2-property")

    # The suburb: quarterly medians with their band, statistics, a link per property.
    facts.get_by_role("link").click()
    expect(page).to_have_url(re.compile(re.escape(f"/locality/{house['locality']['id']}")))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Erskineville")
    median = page.get_by_role("img", name=re.compile(r"^Median sale price by quarter"))
    expect(median).to_be_visible(timeout=10_000)
    assert int(median.get_attribute("data-points") or 0) > 10
    recent = page.get_by_role("region", name="Recent sales").get_by_role("link")
    expect(recent).to_have_count(20)
    check_accessibility(page)
    shoot(page, "3-suburb")

    # The keyboard: back home, type, Down, Enter.
    page.get_by_role("link", name="propintel").click()
    box = page.get_by_role("combobox", name="Search address")
    box.press_sequentially(typed(house["address"]), delay=20)
    expect(page.get_by_role("option").first).to_be_visible(timeout=10_000)
    box.press("ArrowDown")
    first = page.get_by_role("option").first
    expect(first).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", first.get_attribute("id") or "")
    box.press("Escape")
    expect(box).to_have_attribute("aria-expanded", "false")
    box.press("ArrowDown")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/property/"))
    page.close()
    assert problems == [], "\n".join(problems)


def test_the_chart_pages_through_every_sale(
    server: str, browser: Browser, house: dict[str, Any]
) -> None:
    """The property's sales come page by page (the keyset connection, newest first) until
    its end: with pages of 2 (the app's requests rewritten on their way out) the chart and
    the table still hold every sale, newest first, none twice."""
    pages: list[int] = []

    def smaller_pages(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        if "sales(first: $first" in body.get("query", ""):
            body["variables"]["first"] = 2
            pages.append(1)
        route.continue_(post_data=json.dumps(body))

    page = browser.new_page(viewport=DESKTOP)
    page.route("**/graphql", smaller_pages)
    page.goto(f"{server}/property/{house['id']}")
    sales = house["sales"]["totalCount"]
    chart = page.get_by_role("img", name=re.compile(r"^Price history"))
    expect(chart).to_have_attribute("data-points", str(sales), timeout=10_000)
    dates = page.locator("table tbody tr td:first-child").all_inner_texts()
    page.close()
    assert len(pages) == -(-sales // 2), pages  # ceil(sales / 2) requests
    assert len(dates) == sales
    parsed = [datetime.strptime(d.replace("Sept", "Sep"), "%d %b %Y") for d in dates]
    assert parsed == sorted(parsed, reverse=True), dates


def test_register_sign_in_and_watch_the_property(
    server: str, browser: Browser, house: dict[str, Any]
) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=PHONE)
    watch_problems(page, problems)
    page.goto(f"{server}/property/{house['id']}")
    page.get_by_role("link", name="Sign in to watch this property").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    check_accessibility(page)
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")
    email = f"web-{secrets.token_hex(4)}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a walk in the park")
    check_accessibility(page)
    shoot(page, "4-register")
    page.get_by_role("button", name="Create account").click()

    # Registered and signed in: back on the property, where Watch now is.
    expect(page.get_by_role("heading", level=1)).to_have_text(house["address"])
    watch = page.get_by_role("button", name="Watch")
    expect(watch).to_have_attribute("aria-pressed", "false")
    watch.click()
    expect(watch).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("status").filter(has_text="You watch this property")).to_be_visible()
    check_accessibility(page)

    # The access token is renewed with the refresh token before it expires (in memory: the
    # session survives within the page, not a reload); the account page then loads with it.
    with page.expect_response(
        lambda response: "refreshToken" in (response.request.post_data or ""), timeout=15_000
    ) as renewal:
        pass
    assert renewal.value.ok, renewal.value.text()
    assert "errors" not in renewal.value.json(), renewal.value.text()
    page.get_by_role("link", name="My account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    watched = page.get_by_role("region", name="Watched properties")
    expect(watched.get_by_role("link", name=house["address"])).to_be_visible()
    expect(page.get_by_text(f"Signed in as {email}.")).to_be_visible()
    searches = page.get_by_role("region", name="Saved searches")
    searches.get_by_label("Name").fill("Erskineville houses")
    searches.get_by_label("Suburb").fill("Erskineville")
    searches.get_by_role("button", name="Save search").click()
    saved = page.get_by_role("region", name="Saved searches").get_by_role("listitem")
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text("Erskineville houses")
    check_accessibility(page)
    shoot(page, "5-account")

    # Signed out, then in again: the watch is the account's.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What is it worth?")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign in").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a walk in the park")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    expect(
        page.get_by_role("region", name="Watched properties").get_by_role(
            "link", name=house["address"]
        )
    ).to_be_visible()
    storage = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert storage == [0, 0, ""], storage  # the tokens live in memory only
    page.close()
    assert problems == [], "\n".join(problems)


def test_caching_headers_and_the_json_answer_for_api_clients(server: str) -> None:
    page = httpx.get(f"{server}/property/anything", headers={"accept": "text/html"}, timeout=10)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["content-security-policy"] == webapp_csp()
    assert "'unsafe-inline'" not in webapp_csp()
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None, "an inline script"
    again = httpx.get(
        f"{server}/", headers={"accept": "text/html", "if-none-match": page.headers["etag"]}
    )
    assert again.status_code == 304
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.text)
    assert assets, page.text
    for path in assets:
        asset = httpx.get(server + path, timeout=10)
        assert asset.status_code == 200, path
        assert asset.headers["cache-control"] == IMMUTABLE
    assert httpx.get(f"{server}/assets/nope.js", timeout=10).status_code == 404
    about = httpx.get(f"{server}/", headers={"accept": "application/json"}, timeout=10)
    assert about.headers["content-type"] == "application/json"
    assert about.json()["graphql"] == "/graphql"
    assert httpx.get(f"{server}/nope", headers={"accept": "text/html"}).status_code == 404


def test_without_a_build_the_app_answers_503(tmp_path: Path) -> None:
    app = Starlette(routes=webapp_routes(tmp_path / "dist"))

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.get("/locality/x", headers={"accept": "text/html"}),
                await client.get("/assets/index.js"),
                await client.get("/"),  # API clients still learn where the API is
            ]

    # A loop of its own, in a thread: this module's browser holds Playwright's loop here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        page, asset, about = pool.submit(asyncio.run, ask()).result()
    assert page.status_code == 503
    assert "npm run build" in page.text
    assert asset.status_code == 503
    assert about.json()["graphql"] == "/graphql"
