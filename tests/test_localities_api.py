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


async def test_localities_total_count_is_exact(
    executor_client: httpx.AsyncClient, reference: Reference
) -> None:
    names = {s.locality for s in reference.sales}
    query = "query($search: String) { localities(search: $search, first: 1) { totalCount } }"
    for search, expected in (
        (None, len(names)),
        ("t", sum(1 for name, _ in names if name.startswith("T"))),
        ("zz", 0),
    ):
        response = await gql(executor_client, query, search=search)
        assert response.ok()["localities"]["totalCount"] == expected, search
        assert response.statements == 2  # the page, its count


LOCALITY_PROPERTIES = """
query($filter: PropertyFilter, $first: Int!, $after: String) {
  localities(first: 10) { edges { node { name postcode
    properties(filter: $filter, first: $first, after: $after, orderBy: LAST_SALE_PRICE_DESC) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { node { vgPropertyId strataLot isStrata lastSalePrice lastSaleDate } } } } } } }
"""


async def test_locality_properties_take_the_list_filter_and_count_exactly(
    executor_client: httpx.AsyncClient, reference: Reference
) -> None:
    located = reference.property_locality()
    strata = {"isStrata": True, "soldAfter": "2015-01-01"}
    response = await gql(executor_client, LOCALITY_PROPERTIES, filter=strata, first=5)
    edges = response.ok()["localities"]["edges"]
    assert len(edges) >= 4
    counted = 0
    for edge in edges:
        locality = (edge["node"]["name"], edge["node"]["postcode"])
        connection = edge["node"]["properties"]
        nodes = [e["node"] for e in connection["edges"]]
        assert all(n["isStrata"] and n["lastSaleDate"] >= "2015-01-01" for n in nodes)
        prices = [n["lastSalePrice"] for n in nodes]
        assert prices == sorted(prices, reverse=True)
        history = reference.by_property()
        expected = {
            key
            for key, where in located.items()
            if where == locality
            and key[1]
            and max(s.contract_date for s in history[key]).isoformat() >= "2015-01-01"
        }
        assert connection["totalCount"] == len(expected), locality
        assert len(nodes) == min(5, len(expected))
        counted += len(expected)
    assert counted > 100
    # the localities page, their property pages (one batch), the pages' counts (one batch):
    # the filter adds no statement, the count one
    assert response.statements == 3


async def test_a_filtered_locality_walk_is_the_filtered_list(client: httpx.AsyncClient) -> None:
    """Page by page, `locality { properties(filter:) }` is `properties(filter:)` restricted
    to the locality, in the same order."""
    nested = """query($filter: PropertyFilter, $after: String) {
      locality(name: "Erskineville", postcode: "2043") {
        properties(filter: $filter, first: 50, after: $after, orderBy: LAST_SALE_DATE_DESC) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }"""
    listed = """query($filter: PropertyFilter, $after: String) {
      properties(filter: $filter, first: 100, after: $after, orderBy: LAST_SALE_DATE_DESC) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }"""
    filter_ = {"minAreaM2": 100, "maxAreaM2": 250, "isStrata": False}
    walked: list[str] = []
    counts: set[int] = set()
    after = None
    while True:
        connection = (await gql(client, nested, filter=filter_, after=after)).ok()["locality"][
            "properties"
        ]
        walked += [e["node"]["id"] for e in connection["edges"]]
        counts.add(connection["totalCount"])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    whole = {**filter_, "localityName": "ERSKINEVILLE", "postcode": "2043"}
    expected: list[str] = []
    after = None
    while True:
        page = (await gql(client, listed, filter=whole, after=after)).ok()["properties"]
        expected += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(walked) > 50  # more than one page
    assert walked == expected
    assert counts == {len(expected)}
