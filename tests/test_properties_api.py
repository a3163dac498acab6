"""Properties over HTTP, on PostgreSQL and SQLite, checked against the CSV files."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.graphql import gql
from tests.support.reference import Reference

PAGE_QUERY = """
query Page($filter: PropertyFilter, $order: PropertyOrder!, $first: Int!, $after: String) {
  properties(filter: $filter, orderBy: $order, first: $first, after: $after) {
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id vgPropertyId strataLot lastSalePrice lastSaleDate isStrata
                           areaM2 latitude longitude postcode nature } }
  }
}
"""


async def walk(
    client: httpx.AsyncClient, *, order: str, filter_: dict[str, Any], first: int = 100
) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    for _ in range(1000):
        page = (
            await gql(client, PAGE_QUERY, filter=filter_, order=order, first=first, after=after)
        ).ok()["properties"]
        nodes += [edge["node"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("the walk did not end")


def sort_key(order: str, node: dict[str, Any]) -> tuple[object, ...]:
    if order == "ID_ASC":
        return ()
    if order == "LAST_SALE_DATE_DESC":
        return (node["lastSaleDate"],)
    return (node["lastSalePrice"],)


@pytest.mark.parametrize(
    "order", ["ID_ASC", "LAST_SALE_PRICE_ASC", "LAST_SALE_PRICE_DESC", "LAST_SALE_DATE_DESC"]
)
async def test_keyset_walk_of_a_locality_returns_every_property_once_in_order(
    client: httpx.AsyncClient, reference: Reference, order: str
) -> None:
    nodes = await walk(
        client, order=order, filter_={"localityName": "Erskineville", "postcode": "2043"}
    )

    keys = [(n["vgPropertyId"], n["strataLot"] or "") for n in nodes]
    assert len(keys) == len(set(keys)), "a property came twice"
    expected = {
        k for k, loc in reference.property_locality().items() if loc == ("ERSKINEVILLE", "2043")
    }
    assert set(keys) == expected
    values = [sort_key(order, n) for n in nodes]
    if order != "ID_ASC":
        assert values == sorted(values, reverse=order.endswith("DESC"))


async def test_last_sale_is_the_newest_sale_in_the_csv(
    client: httpx.AsyncClient, reference: Reference
) -> None:
    nodes = await walk(client, order="ID_ASC", filter_={"localityName": "TEMPE"})
    history = reference.by_property()
    for node in nodes:
        sales = history[(node["vgPropertyId"], node["strataLot"] or "")]
        newest = max(sales, key=lambda s: s.contract_date)
        assert node["lastSaleDate"] == newest.contract_date.isoformat()
        assert node["lastSalePrice"] in {
            s.price for s in sales if s.contract_date == newest.contract_date
        }


HISTORY_QUERY = """
query History($id: ID!, $first: Int!, $after: String) {
  property(id: $id) {
    vgPropertyId strataLot
    sales(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { contractDate price dealingNumber isMarketSale property { id } } }
    }
  }
}
"""


async def test_price_histories_match_the_csv_page_by_page(
    client: httpx.AsyncClient, reference: Reference
) -> None:
    nodes = await walk(client, order="LAST_SALE_DATE_DESC", filter_={"localityName": "ABERDARE"})
    history = reference.by_property()
    checked = 0
    for node in nodes[:60]:
        sales: list[dict[str, Any]] = []
        counts: set[int] = set()
        after = None
        while True:
            data = (await gql(client, HISTORY_QUERY, id=node["id"], first=2, after=after)).ok()
            connection = data["property"]["sales"]
            sales += [edge["node"] for edge in connection["edges"]]
            counts.add(connection["totalCount"])
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
        expected = sorted(
            history[(node["vgPropertyId"], node["strataLot"] or "")],
            key=lambda s: s.contract_date,
            reverse=True,
        )
        assert [s["dealingNumber"] for s in sales] != []
        assert counts == {len(expected)}  # the whole history, on every page
        assert {s["dealingNumber"] for s in sales} == {s.dealing_number for s in expected}
        assert [s["contractDate"] for s in sales] == [s.contract_date.isoformat() for s in expected]
        by_dealing = {s.dealing_number: s for s in expected}
        for sale in sales:
            ref = by_dealing[sale["dealingNumber"]]
            assert (sale["price"], sale["isMarketSale"]) == (ref.price, ref.is_market)
            assert sale["property"]["id"] == node["id"]
        checked += len(sales)
    assert checked > 60


async def test_filters_narrow_the_list(client: httpx.AsyncClient) -> None:
    base = {"localityName": "ERSKINEVILLE", "postcode": "2043"}
    cases: list[tuple[dict[str, Any], object]] = [
        ({"isStrata": True}, lambda n: n["isStrata"] is True),
        ({"isStrata": False}, lambda n: n["isStrata"] is False),
        (
            {"minLastSalePrice": 1_000_000, "maxLastSalePrice": 2_000_000},
            lambda n: 1_000_000 <= n["lastSalePrice"] <= 2_000_000,
        ),
        (
            {"soldAfter": "2020-01-01", "soldBefore": "2020-12-31"},
            lambda n: "2020-01-01" <= n["lastSaleDate"] <= "2020-12-31",
        ),
        (
            {"minAreaM2": 100, "maxAreaM2": 200},
            lambda n: n["areaM2"] is not None and 100 <= n["areaM2"] <= 200,
        ),
        ({"nature": "VACANT_LAND"}, lambda n: n["nature"] == "VACANT_LAND"),
    ]
    everything = await walk(client, order="ID_ASC", filter_=base)
    for extra, predicate in cases:
        nodes = await walk(client, order="ID_ASC", filter_={**base, **extra})
        assert nodes, extra
        assert all(predicate(n) for n in nodes), extra  # type: ignore[operator]
        assert [n for n in everything if predicate(n)] == nodes, extra  # type: ignore[operator]


async def test_bbox_and_district_filters(client: httpx.AsyncClient) -> None:
    tempe = await walk(client, order="ID_ASC", filter_={"localityName": "TEMPE"})
    lat, lon = tempe[0]["latitude"], tempe[0]["longitude"]
    box = {
        "minLat": lat - 0.001,
        "maxLat": lat + 0.001,
        "minLon": lon - 0.001,
        "maxLon": lon + 0.001,
    }
    boxed = await walk(client, order="ID_ASC", filter_={"bbox": box})
    assert {n["id"] for n in tempe} <= {n["id"] for n in boxed}
    assert all(box["minLat"] <= n["latitude"] <= box["maxLat"] for n in boxed)
    cessnock = await walk(client, order="ID_ASC", filter_={"district": "cessnock"})
    aberdare = await walk(client, order="ID_ASC", filter_={"localityName": "ABERDARE"})
    assert {n["id"] for n in aberdare} <= {n["id"] for n in cessnock}


async def test_node_resolves_each_type_and_lists_prime_the_property_loader(
    client: httpx.AsyncClient,
) -> None:
    first = (
        await gql(client, PAGE_QUERY, filter={"localityName": "TEMPE"}, order="ID_ASC", first=1)
    ).ok()
    property_id = first["properties"]["edges"][0]["node"]["id"]
    response = await gql(
        client,
        """query($id: ID!) { node(id: $id) { id ... on Property { address lastSale { id } locality { id } } } }""",
        id=property_id,
    )
    node = response.ok()["node"]
    assert node["id"] == property_id
    assert node["address"].endswith("TEMPE NSW 2044")
    for other in (node["lastSale"]["id"], node["locality"]["id"]):
        again = (await gql(client, "query($id: ID!) { node(id: $id) { id } }", id=other)).ok()
        assert again["node"]["id"] == other


NESTED = """
query Nested($first: Int!) {
  properties(first: $first, filter: {postcode: "2043"}, orderBy: LAST_SALE_PRICE_DESC) {
    edges { node { address vgPropertyId locality { name stats { salesCount } }
                   sales(first: 5) { edges { node { price contractDate property { id } } } } } }
  }
}
"""


@pytest.mark.parametrize("first", [10, 100])
async def test_nested_page_costs_three_statements_whatever_its_size(
    executor_client: httpx.AsyncClient, first: int
) -> None:
    response = await gql(executor_client, NESTED, first=first)
    data = response.ok()
    assert len(data["properties"]["edges"]) == first
    assert all(1 <= len(e["node"]["sales"]["edges"]) <= 5 for e in data["properties"]["edges"])
    # properties page, sales of all of them (one batch), their localities (one batch),
    # the localities' stats (one batch); Sale.property is primed by the page.
    assert response.statements == 4


async def test_page_of_properties_with_sales_and_locality_is_three_statements(
    executor_client: httpx.AsyncClient,
) -> None:
    query = """query($first: Int!) { properties(first: $first) { edges { node {
        address sales(first: 5) { edges { node { price } } } locality { name } } } } }"""
    counts = {n: (await gql(executor_client, query, first=n)).statements for n in (10, 100)}
    assert counts == {10: 3, 100: 3}


async def test_sql_counts_are_reported_per_operation(executor_client: httpx.AsyncClient) -> None:
    response = await gql(executor_client, "{ localities(first: 1) { edges { node { name } } } }")
    assert response.statements == 1
    # The count is per operation, not cumulative:
    assert (
        await gql(executor_client, "{ localities(first: 1) { edges { node { name } } } }")
    ).statements == 1


COUNT = """query($filter: PropertyFilter, $first: Int! = 1) {
  properties(filter: $filter, first: $first) { totalCount edges { cursor } } }"""


async def total_count(client: httpx.AsyncClient, filter_: dict[str, Any] | None) -> int:
    return int((await gql(client, COUNT, filter=filter_)).ok()["properties"]["totalCount"])


async def test_total_count_is_the_length_of_the_whole_list(
    client: httpx.AsyncClient, reference: Reference
) -> None:
    # The slice holds fewer properties than EXACT_COUNT_LIMIT: every count here is exact.
    assert await total_count(client, None) == len(reference.by_property())
    base = {"localityName": "erskineville", "postcode": "2043"}
    in_erskineville = [
        key for key, loc in reference.property_locality().items() if loc == ("ERSKINEVILLE", "2043")
    ]
    assert await total_count(client, base) == len(in_erskineville)
    assert await total_count(client, {**base, "isStrata": True}) == sum(
        1 for _, lot in in_erskineville if lot
    )
    for extra in (
        {"minLastSalePrice": 1_000_000, "maxLastSalePrice": 2_000_000},
        {"soldAfter": "2020-01-01", "nature": "RESIDENCE"},
        {"minAreaM2": 100, "maxAreaM2": 200},
        {"district": "city of sydney"},
    ):
        nodes = await walk(client, order="ID_ASC", filter_={**base, **extra})
        assert await total_count(client, {**base, **extra}) == len(nodes), extra
    assert await total_count(client, {"localityName": "ATLANTIS"}) == 0


async def test_total_counts_cost_a_statement_per_level_and_nothing_unselected(
    executor_client: httpx.AsyncClient, backend_url: str, executor: str
) -> None:
    query = """query($first: Int!) { properties(first: $first, filter: {postcode: "2043"}) {
        totalCount edges { node { sales(first: 1) { totalCount edges { node { price } } } } } } }"""
    plain = """query($first: Int!) { properties(first: $first, filter: {postcode: "2043"}) {
        edges { node { sales(first: 1) { edges { node { price } } } } } } }"""
    for first in (10, 100):
        response = await gql(executor_client, query, first=first)
        connection = response.ok()["properties"]
        assert len(connection["edges"]) == first < connection["totalCount"]
        assert all(e["node"]["sales"]["totalCount"] >= 1 for e in connection["edges"])
        # the page, its count, the sales of all its properties, their counts (one batch)
        assert response.statements == 4
        # Without counts, on PostgreSQL a plan builds the page and its sales as one JSON
        # statement (app/graphql/json_fields.py); elsewhere the page, then the sales.
        one = executor == "compiled" and backend_url.startswith("postgresql")
        assert (await gql(executor_client, plain, first=first)).statements == (1 if one else 2)


async def test_past_the_exact_limit_the_count_is_the_planners_estimate(
    pg_client: httpx.AsyncClient, reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, a list longer than EXACT_COUNT_LIMIT is counted up to the limit and
    then estimated from the table's statistics (EXPLAIN): a second statement."""
    monkeypatch.setattr("loaders.properties.EXACT_COUNT_LIMIT", 100)
    everything = await gql(pg_client, COUNT)
    estimate = everything.ok()["properties"]["totalCount"]
    assert estimate == pytest.approx(len(reference.by_property()), rel=0.1)
    assert everything.statements == 3  # the page, the count stopped at 101, the estimate
    small = {"isStrata": False, "soldAfter": "2024-06-01"}
    response = await gql(pg_client, COUNT, filter=small, first=100)
    connection = response.ok()["properties"]
    assert len(connection["edges"]) == connection["totalCount"] <= 100  # exact
    assert response.statements == 2
    # A list restricted to localities is counted exactly, whatever its length.
    in_2043 = sum(1 for _, code in reference.property_locality().values() if code == "2043")
    response = await gql(pg_client, COUNT, filter={"postcode": "2043"})
    assert response.ok()["properties"]["totalCount"] == in_2043 > 100
    assert response.statements == 2
