"""Localities and their statistics over HTTP, checked against the CSV files."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from tests.support.graphql import gql
from tests.support.reference import Reference, quartiles

STATS = """
query Stats($name: String!, $postcode: String!, $from: Date, $to: Date, $strata: Boolean) {
  locality(name: $name, postcode: $postcode) {
    id name postcode state district latitude longitude
    stats(from: $from, to: $to, isStrata: $strata) {
      salesCount medianPrice p25Price p75Price medianPricePerM2
    }
  }
}
"""

WINDOWS = [
    {},
    {"from": "2015-01-01", "to": "2019-12-31"},
    {"from": "2023-01-01"},
    {"strata": True},
    {"strata": False, "to": "2010-06-30"},
]


@pytest.mark.parametrize(
    "window", WINDOWS, ids=lambda w: ",".join(f"{k}={v}" for k, v in w.items()) or "all"
)
@pytest.mark.parametrize(
    "locality", [("ERSKINEVILLE", "2043"), ("TEMPE", "2044"), ("ABERDARE", "2325")]
)
async def test_stats_match_an_independent_computation(
    client: httpx.AsyncClient,
    reference: Reference,
    locality: tuple[str, str],
    window: dict[str, object],
) -> None:
    name, postcode = locality
    data = (await gql(client, STATS, name=name.title(), postcode=postcode, **window)).ok()
    stats = data["locality"]["stats"]
    sales = reference.market_prices(
        locality,
        date_from=date.fromisoformat(str(window["from"])) if "from" in window else None,
        date_to=date.fromisoformat(str(window["to"])) if "to" in window else None,
        strata=window.get("strata"),  # type: ignore[arg-type]
    )
    assert stats["salesCount"] == len(sales)
    assert sales, "the window should hold sales"
    q1, q2, q3 = quartiles(s.price for s in sales)  # type: ignore[misc]
    assert stats["p25Price"] == pytest.approx(q1)
    assert stats["medianPrice"] == pytest.approx(q2)
    assert stats["p75Price"] == pytest.approx(q3)
    per_m2 = quartiles(s.price / s.area_m2 for s in sales if s.area_m2)
    assert stats["medianPricePerM2"] == pytest.approx(per_m2[1] if per_m2 else None)


async def test_locality_has_coordinates_and_district(client: httpx.AsyncClient) -> None:
    data = (await gql(client, STATS, name="tempe", postcode="2044")).ok()["locality"]
    assert (data["name"], data["state"], data["district"]) == ("TEMPE", "NSW", "INNER WEST")
    assert data["latitude"] == pytest.approx(-33.92, abs=0.05)
    assert data["longitude"] == pytest.approx(151.16, abs=0.05)


async def test_empty_window_gives_zero_sales_not_an_error(client: httpx.AsyncClient) -> None:
    data = (await gql(client, STATS, name="TEMPE", postcode="2044", to="1980-01-01")).ok()
    assert data["locality"]["stats"] == {
        "salesCount": 0,
        "medianPrice": None,
        "p25Price": None,
        "p75Price": None,
        "medianPricePerM2": None,
    }


async def test_unknown_locality_is_null(client: httpx.AsyncClient) -> None:
    data = (await gql(client, STATS, name="ATLANTIS", postcode="2000")).ok()
    assert data["locality"] is None


LOCALITIES = """
query($search: String, $first: Int!, $after: String) {
  localities(search: $search, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { name postcode } }
  }
}
"""


async def test_localities_walk_in_name_order_with_prefix_search(
    client: httpx.AsyncClient, reference: Reference
) -> None:
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = (await gql(client, LOCALITIES, first=2, after=after)).ok()["localities"]
        seen += [(e["node"]["name"], e["node"]["postcode"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(seen)
    assert set(seen) == {s.locality for s in reference.sales}
    found = (await gql(client, LOCALITIES, search="ers", first=10)).ok()["localities"]["edges"]
    assert {e["node"]["name"] for e in found} == {"ERSKINEVILLE"}
    none = (await gql(client, LOCALITIES, search="%", first=10)).ok()["localities"]["edges"]
    assert none == []


async def test_locality_properties_and_stats_batch_across_localities(
    executor_client: httpx.AsyncClient,
) -> None:
    query = """{ localities(first: 10) { edges { node { name
        stats { salesCount } properties(first: 3, orderBy: LAST_SALE_PRICE_DESC) {
          pageInfo { hasNextPage } edges { node { lastSalePrice locality { name } } } } } } } }"""
    response = await gql(executor_client, query)
    edges = response.ok()["localities"]["edges"]
    assert len(edges) > 3
    for edge in edges:
        prices = [e["node"]["lastSalePrice"] for e in edge["node"]["properties"]["edges"]]
        assert prices == sorted(prices, reverse=True)
        assert {e["node"]["locality"]["name"] for e in edge["node"]["properties"]["edges"]} <= {
            edge["node"]["name"]
        }
    # localities page, their stats, their property pages, the properties' localities (primed
    # by id from the first statement? no: a separate by-id batch).
    assert response.statements == 4
