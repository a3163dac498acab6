"""Checks against the whole of ../shared/data loaded in PostgreSQL.

Opt-in (`scripts/test --full`, which sets PROPINTEL_FULL_DATA_URL after loading the data
once): the load takes minutes, more than the everyday suite should. The checks are the
same kind as on the slice, at full scale: statistics and price histories against an
independent reading of every CSV, a complete keyset walk of a large locality, and the
statement count of the nested page query.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from app.auth.principal import Role
from tests.support.apps import running_app
from tests.support.credentials import bearer
from tests.support.graphql import gql
from tests.support.reference import Reference, quartiles, read_reference
from tests.support.settings import COMPILED_EXECUTION, DATA_DIR, settings_for

pytestmark = pytest.mark.full_data

FULL_URL = os.environ.get("PROPINTEL_FULL_DATA_URL")
LOCALITIES = {
    ("NEWTOWN", "2042"),
    ("PARRAMATTA", "2150"),
    ("ZETLAND", "2017"),
    ("MOSMAN", "2088"),
    ("CESSNOCK", "2325"),
    ("DUBBO", "2830"),
    ("BONDI BEACH", "2026"),
    ("BLACKTOWN", "2148"),
    ("ORANGE", "2800"),
    ("KIAMA", "2533"),
}


@pytest.fixture(scope="module")
def full_reference() -> Reference:
    files = sorted(DATA_DIR.glob("nsw_psi_sales_*.csv.gz"))
    return read_reference(files, {name for name, _ in LOCALITIES})


@pytest.fixture(scope="module")
async def full_client() -> AsyncIterator[httpx.AsyncClient]:
    if not FULL_URL:
        pytest.fail("set PROPINTEL_FULL_DATA_URL (scripts/test --full) to run the full-data checks")
    async with running_app(settings_for(FULL_URL)) as running:
        yield running.client


@pytest.fixture(scope="module")
async def full_executor_client(executor: str) -> AsyncIterator[httpx.AsyncClient]:
    if not FULL_URL:
        pytest.fail("set PROPINTEL_FULL_DATA_URL (scripts/test --full) to run the full-data checks")
    settings = settings_for(FULL_URL, PROPINTEL_COMPILED_EXECUTION=COMPILED_EXECUTION[executor])
    async with running_app(settings) as running:
        yield running.client


STATS = """query($name: String!, $postcode: String!, $from: Date, $strata: Boolean) {
  locality(name: $name, postcode: $postcode) {
    stats(from: $from, isStrata: $strata) { salesCount medianPrice p25Price p75Price medianPricePerM2 }
  } }"""


@pytest.mark.parametrize("window", [{}, {"from": "2020-01-01"}, {"strata": True}])
async def test_statistics_of_large_localities_match_the_csv(
    full_client: httpx.AsyncClient, full_reference: Reference, window: dict[str, object]
) -> None:
    for name, postcode in sorted(LOCALITIES):
        stats = (await gql(full_client, STATS, name=name, postcode=postcode, **window)).ok()
        stats = stats["locality"]["stats"]
        sales = full_reference.market_prices(
            (name, postcode),
            date_from=date.fromisoformat(str(window["from"])) if "from" in window else None,
            strata=window.get("strata"),  # type: ignore[arg-type]
        )
        assert stats["salesCount"] == len(sales), (name, window)
        q1, q2, q3 = quartiles(s.price for s in sales)  # type: ignore[misc]
        assert (stats["p25Price"], stats["medianPrice"], stats["p75Price"]) == pytest.approx(
            (q1, q2, q3)
        ), (name, window)


PAGE = """query($filter: PropertyFilter, $first: Int!, $after: String) {
  properties(filter: $filter, first: $first, after: $after, orderBy: LAST_SALE_PRICE_DESC) {
    pageInfo { hasNextPage endCursor }
    edges { node { id vgPropertyId strataLot
      sales(first: 100) { edges { node { contractDate price dealingNumber } } } } } } }"""


async def test_walk_of_a_large_locality_and_its_price_histories(
    full_client: httpx.AsyncClient, full_reference: Reference
) -> None:
    newtown = ("NEWTOWN", "2042")
    ever_in_newtown = set(full_reference.by_property())  # every property of the 10 localities
    # A property's history includes its sales recorded under other localities (and its
    # locality is that of its latest record): read every row of these properties.
    files = sorted(DATA_DIR.glob("nsw_psi_sales_*.csv.gz"))
    whole = read_reference(files, set(), property_ids={str(vg_id) for vg_id, _ in ever_in_newtown})
    history = whole.by_property()
    expected = {key for key, where in whole.property_locality().items() if where == newtown}
    seen: list[tuple[int, str]] = []
    after = None
    compared = 0
    while True:
        data = await gql(
            full_client,
            PAGE,
            filter={"localityName": "NEWTOWN", "postcode": "2042"},
            first=100,
            after=after,
            # 100 properties x 100 sales (cost ~51,000) is past a USER's cost limit.
            headers=bearer(3, Role.ADMIN),
        )
        page = data.ok()["properties"]
        for edge in page["edges"]:
            node = edge["node"]
            key = (node["vgPropertyId"], node["strataLot"] or "")
            seen.append(key)
            sales = [
                (s["node"]["contractDate"], s["node"]["dealingNumber"])
                for s in node["sales"]["edges"]
            ]
            reference = sorted(
                ((s.contract_date.isoformat(), s.dealing_number) for s in history[key]),
                reverse=True,
            )
            assert sorted(sales, reverse=True) == reference, key
            assert [d for d, _ in sales] == sorted((d for d, _ in sales), reverse=True)
            compared += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    assert compared > 3000


@pytest.mark.parametrize("first", [10, 100])
async def test_nested_page_costs_at_most_three_statements(
    full_executor_client: httpx.AsyncClient, first: int
) -> None:
    query = """query($first: Int!) { properties(first: $first, orderBy: LAST_SALE_DATE_DESC) {
      edges { node { address sales(first: 5) { edges { node { price } } } locality { name } } } } }"""
    response = await gql(full_executor_client, query, first=first)
    assert len(response.ok()["properties"]["edges"]) == first
    assert response.statements == 3
