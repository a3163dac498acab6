"""The JSON path (PostgreSQL builds the response's JSON: app/graphql/json_fields.py) answers
byte for byte what Strawberry's executor answers, over HTTP, on real PostgreSQL: the bench's
documents, nulls, empty and last pages, cursors, enum values, an Int past 32 bits (the
standard executor reports it, as before), and what the caches serve after a write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import asyncpg
import orjson
import pytest

from app.graphql.executor import ExecutionCounts
from bench import run as bench
from tests.support.apps import RunningApp, both_executors, running_app, running_app_with_redis
from tests.support.credentials import ADMIN
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.graphql import gql, post
from tests.support.settings import redis_cache_settings, settings_for

Apps = tuple[RunningApp, RunningApp]

Q1 = f"""query($id: ID!) {{ property(id: $id) {{ {bench.PROPERTY_FIELDS}
    sales(first: 10) {{ edges {{ node {{ {bench.SALE_FIELDS} }} }} }} }} }}"""

EVERYTHING_SQL_SHOWS = """
fragment SaleBits on Sale { id __typename contractDate settlementDate price dealingNumber
    saleCode isMarketSale parcelsInSale }
query($id: ID!, $first: Int!, $after: String) {
  property(id: $id) {
    __typename id vgPropertyId strataLot propertyName unitNumber houseNumber streetName
    postcode district zoning nature primaryPurpose isStrata lastSalePrice lastSaleDate
    history: sales(first: $first, after: $after) {
      __typename
      pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
      edges { __typename cursor node { ...SaleBits } }
      nodes { price ... on Sale { dealingNumber } }
    }
    newest: sales(first: 1) { edges { node { price } } pageInfo { endCursor } }
  }
}"""

PAGE = """query($filter: PropertyFilter, $order: PropertyOrder!, $first: Int!, $after: String) {
  properties(filter: $filter, orderBy: $order, first: $first, after: $after) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id vgPropertyId nature strataLot lastSalePrice lastSaleDate
      sales(first: 2) { pageInfo { hasNextPage endCursor } edges { cursor node { price } } } } }
    nodes { id }
  }
}"""


@pytest.fixture(scope="module")
async def apps(postgres_url: str) -> AsyncIterator[Apps]:
    async with both_executors(postgres_url) as apps:
        yield apps


def counts(apps: Apps) -> ExecutionCounts:
    return apps[0].state.graphql.compiled.counts  # type: ignore[no-any-return]


async def answers(apps: Apps, query: str, **variables: Any) -> dict[str, Any]:
    """The compiled app's body, checked byte for byte equal to the reference's but for the
    statement count (kept in `extensions.sqlStatements` of the compiled app's)."""
    compiled, standard = apps
    payload = {"query": query, "variables": variables}
    mine = await compiled.client.post("/graphql", json=payload)
    reference = await standard.client.post("/graphql", json=payload)
    assert mine.status_code == reference.status_code == 200
    mine_body: dict[str, Any] = orjson.loads(mine.content)
    reference_body: dict[str, Any] = orjson.loads(reference.content)
    statements = (mine_body.get("extensions") or {}).pop("sqlStatements", None)
    (reference_body.get("extensions") or {}).pop("sqlStatements", None)
    for body in (mine_body, reference_body):
        if body.get("extensions") == {}:
            del body["extensions"]
    assert orjson.dumps(mine_body) == orjson.dumps(reference_body), (query, variables)
    mine_body["statements"] = statements
    return mine_body


async def on_json_path(apps: Apps, query: str, **variables: Any) -> dict[str, Any]:
    """`answers`, and the compiled app answered it in one statement (the JSON path)."""
    before = counts(apps).compiled
    body = await answers(apps, query, **variables)
    assert "errors" not in body, body
    assert counts(apps).compiled == before + 1
    assert body["statements"] == 1, body["statements"]
    return body


async def property_ids(apps: Apps, locality: str = "TEMPE", first: int = 30) -> list[str]:
    body = await answers(
        apps,
        "query($name: String!, $first: Int!) { properties(first: $first, "
        "filter: {localityName: $name}) { edges { node { id } } } }",
        name=locality,
        first=first,
    )
    return [edge["node"]["id"] for edge in body["data"]["properties"]["edges"]]


async def test_q1_is_one_statement_with_the_same_bytes(apps: Apps) -> None:
    for property_id in (await property_ids(apps))[:5]:
        body = await on_json_path(apps, Q1, id=property_id)
        assert body["data"]["property"]["sales"]["edges"]


async def test_q2_and_q4_pages_are_one_statement_each(apps: Apps) -> None:
    request = bench.body(bench.ours_page(20, 5), name="ERSKINEVILLE", postcode="2043")
    after = None
    for _ in range(3):
        body = await on_json_path(apps, request["query"], **request["variables"], after=after)
        page = body["data"]["properties"]
        assert len(page["edges"]) == 20
        after = page["pageInfo"]["endCursor"]


async def test_every_field_sql_shows_cursors_after_and_the_last_page(apps: Apps) -> None:
    """Nulls (settlement dates, strata lots, sale codes), enum values, ids, empty pages,
    pages after a cursor, to the last page of each property's history."""
    seen_null = seen_nature = 0
    for property_id in await property_ids(apps, first=12):
        after = None
        for _ in range(20):
            body = await on_json_path(
                apps, EVERYTHING_SQL_SHOWS, id=property_id, first=2, after=after
            )
            found = body["data"]["property"]
            seen_null += found["strataLot"] is None
            seen_nature += found["nature"] is not None
            history = found["history"]
            assert history["pageInfo"]["hasPreviousPage"] is (after is not None)
            if not history["pageInfo"]["hasNextPage"]:
                break
            after = history["pageInfo"]["endCursor"]
        else:
            pytest.fail("no last page")
        empty = await on_json_path(apps, EVERYTHING_SQL_SHOWS, id=property_id, first=0)
        assert empty["data"]["property"]["history"]["edges"] == []
    assert seen_null
    assert seen_nature


async def test_a_missing_property_is_null_and_bad_arguments_keep_their_errors(
    apps: Apps,
) -> None:
    missing = await on_json_path(apps, Q1, id="UHJvcGVydHk6OTk5OTk5OTk5")
    assert missing["data"] == {"property": None}
    (property_id,) = (await property_ids(apps, first=1))[:1]
    cases: list[dict[str, Any]] = [
        {"id": "nope"},
        {"id": "U2FsZTox"},  # a Sale's id
        {"id": property_id, "first": -1},
        {"id": property_id, "first": 2, "after": "garbage"},
        {"id": property_id, "first": 10_000},
    ]
    for variables in cases:
        variables.setdefault("first", 2)
        body = await answers(apps, EVERYTHING_SQL_SHOWS, **variables)
        assert body["errors"], variables


@pytest.mark.parametrize(
    "order", ["ID_ASC", "LAST_SALE_PRICE_ASC", "LAST_SALE_PRICE_DESC", "LAST_SALE_DATE_DESC"]
)
async def test_pages_of_every_order_to_the_last(apps: Apps, order: str) -> None:
    filter_ = {"localityName": "ERSKINEVILLE", "postcode": "2043", "isStrata": True}
    after, pages = None, 0
    while True:
        body = await on_json_path(apps, PAGE, filter=filter_, order=order, first=50, after=after)
        page = body["data"]["properties"]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages > 1
    assert page["edges"]  # the last page holds the rest


async def test_empty_lists_and_page_errors(apps: Apps) -> None:
    empty = await on_json_path(
        apps, PAGE, filter={"localityName": "ATLANTIS"}, order="ID_ASC", first=5
    )
    assert empty["data"]["properties"]["edges"] == []
    assert empty["data"]["properties"]["pageInfo"]["endCursor"] is None
    await on_json_path(apps, PAGE, order="ID_ASC", first=0)
    other_order = await answers(apps, PAGE, order="ID_ASC", first=1)
    cursor = other_order["data"]["properties"]["pageInfo"]["endCursor"]
    for variables in (
        {"order": "LAST_SALE_DATE_DESC", "first": 3, "after": cursor},  # another order's
        {"order": "ID_ASC", "first": -3},
        {"order": "ID_ASC", "first": 3, "filter": {"postcode": "20"}},
    ):
        body = await answers(apps, PAGE, **variables)
        assert body["errors"], variables


async def test_selections_beyond_sql_take_the_usual_path(apps: Apps) -> None:
    """Floats, totalCount, addresses, two root fields: answered as before (same bytes), in
    more than one statement."""
    (property_id,) = await property_ids(apps, first=1)
    for query in (
        "query($id: ID!) { property(id: $id) { areaM2 sales(first: 2) { edges { node { price } } } } }",
        "query($id: ID!) { property(id: $id) { address sales(first: 2) { totalCount } } }",
        "query($id: ID!) { a: property(id: $id) { id sales(first: 1) { nodes { price } } }"
        " b: property(id: $id) { vgPropertyId } }",
    ):
        body = await answers(apps, query, id=property_id)
        assert "errors" not in body
        assert body["statements"] >= 2


# --- writes: a database of this module's own ---------------------------------------------------


@pytest.fixture(scope="module")
def own_database() -> Iterator[str]:
    name = pg_database_name("json_path")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


async def execute(url: str, statement: str, *arguments: Any) -> Any:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(statement, *arguments)
    finally:
        await connection.close()


async def test_an_int_past_32_bits_gives_todays_error(own_database: str) -> None:
    # Two properties: the newest sale of one, the last sale price of the other, past Int.
    rows = await execute(
        own_database,
        "SELECT DISTINCT ON (s.property_id) s.property_id, s.id, s.price, p.last_sale_price "
        "FROM sales s JOIN properties p ON p.id = s.property_id WHERE p.deleted_at IS NULL "
        "ORDER BY s.property_id, s.contract_date DESC, s.id DESC LIMIT 3",
    )
    (sale_of, sale_id, price, _), (property_pk, _, _, last_price), (dated, dated_sale, _, _) = rows
    (contract_date,) = (
        row[0]
        for row in await execute(
            own_database, "SELECT contract_date FROM sales WHERE id = $1", dated_sale
        )
    )
    await execute(own_database, "UPDATE sales SET price = 3000000000 WHERE id = $1", sale_id)
    await execute(
        own_database,
        "UPDATE properties SET last_sale_price = -2147483649 WHERE id = $1",
        property_pk,
    )
    # A date Python cannot hold: what the standard path answers (its error), not "infinity".
    await execute(
        own_database, "UPDATE sales SET contract_date = 'infinity' WHERE id = $1", dated_sale
    )
    try:
        async with both_executors(own_database) as apps:
            fallbacks = counts(apps).fallbacks
            await answers(apps, Q1, id=bench_global_id(dated))
            assert counts(apps).fallbacks == fallbacks + 1
            for pk in (sale_of, property_pk):
                fallbacks = counts(apps).fallbacks
                body = await answers(apps, Q1, id=bench_global_id(pk))
                assert body["data"] == {"property": None}
                assert "Int cannot represent non 32-bit signed integer value" in str(body["errors"])
                assert counts(apps).fallbacks == fallbacks + 1  # tried, then the standard path
            # The same values outside the selection do not matter.
            body = await on_json_path(
                apps, "query($id: ID!) { property(id: $id) { id } }", id=bench_global_id(pk)
            )
            assert body["data"]["property"]["id"] == bench_global_id(pk)
    finally:
        await execute(own_database, "UPDATE sales SET price = $2 WHERE id = $1", sale_id, price)
        await execute(
            own_database,
            "UPDATE sales SET contract_date = $2 WHERE id = $1",
            dated_sale,
            contract_date,
        )
        await execute(
            own_database,
            "UPDATE properties SET last_sale_price = $2 WHERE id = $1",
            property_pk,
            last_price,
        )


def bench_global_id(pk: int) -> str:
    from schema.ids import to_global_id

    return str(to_global_id("Property", pk))


RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) { id price } }"""


async def test_caches_serve_the_json_and_a_write_invalidates_it(own_database: str) -> None:
    settings = redis_cache_settings(own_database)
    async with running_app_with_redis(settings) as app, running_app(settings) as other:
        await asyncio.wait_for(other.state.caching.tiered.subscribed.wait(), 5)
        (row,) = await execute(
            own_database,
            "SELECT p.id FROM properties p JOIN localities l ON l.id = p.locality_id "
            "WHERE p.deleted_at IS NULL AND l.name = 'TEMPE' ORDER BY p.id LIMIT 1",
        )
        property_id = bench_global_id(row[0])
        page = bench.body(bench.ours_page(20, 5), name="TEMPE", postcode="2044")
        first = await post(app.client, Q1, id=property_id)
        assert first.headers["x-cache"] == "miss"
        assert first.json()["extensions"]["sqlStatements"] == 1
        hit = await post(app.client, Q1, id=property_id)
        assert hit.headers["x-cache"] == "hit"
        assert hit.content.replace(b'"sqlStatements":0', b"") == first.content.replace(
            b'"sqlStatements":1', b""
        )
        # Another document of the same shape: a whole-operation miss, the JSON of (shape, key)
        # from the entity cache: no statement. The other process: from L2.
        same_shape = await post(app.client, Q1 + " ", id=property_id)
        assert same_shape.headers["x-cache"] == "miss"
        assert same_shape.json()["extensions"]["sqlStatements"] == 0
        assert same_shape.json()["data"] == first.json()["data"]
        from_l2 = await post(other.client, Q1 + "  ", id=property_id)
        assert from_l2.json()["extensions"]["sqlStatements"] == 0
        assert from_l2.json()["data"] == first.json()["data"]
        listed = await post(app.client, page["query"], **page["variables"])
        assert listed.json()["extensions"]["sqlStatements"] == 1

        response = await post(
            app.client,
            RECORD_SALE,
            ADMIN,
            input={
                "propertyId": property_id,
                "contractDate": date.today().isoformat(),
                "price": 2_100_000_000,
                "dealingNumber": "JS123456",
            },
        )
        assert response.json()["data"]["recordSale"]["price"] == 2_100_000_000

        async def newest(client: Any) -> Any:
            body = (await gql(client, Q1, id=property_id)).ok()
            return body["property"]["sales"]["edges"][0]["node"]

        for client in (app.client, other.client):
            for _ in range(100):
                if (await newest(client))["dealingNumber"] == "JS123456":
                    break
                await asyncio.sleep(0.01)
            assert (await newest(client))["price"] == 2_100_000_000
        async with running_app(settings_for(own_database)) as uncached:
            reference = (await gql(uncached.client, Q1, id=property_id)).ok()
            assert (await gql(app.client, Q1, id=property_id)).ok() == reference
            listed_again = (await gql(app.client, page["query"], **page["variables"])).ok()
            assert (
                listed_again
                == (await gql(uncached.client, page["query"], **page["variables"])).ok()
            )
