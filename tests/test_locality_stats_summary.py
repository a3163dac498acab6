"""A locality's default-window statistics served from `locality_stats_summary` (PostgreSQL):
always the figures the sales give now, whatever was written, and from the summary (same
statement count) when nothing was.

The reference is the percentile SQL run directly on the sales; the app is read over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from db.ingest import merge_sql
from db.ingest.merge_sql import BUMP_STAGED_STATS_VERSIONS
from db.repositories.stats import SUMMARISED_STATS
from tests.support.apps import RunningApp, running_app
from tests.support.credentials import ADMIN
from tests.support.databases import (
    SMALL_LOCALITY,
    create_pg_database,
    drop_pg_database,
    load_small,
    pg_database_name,
)
from tests.support.graphql import gql
from tests.support.settings import settings_for

STATS = """{ localities(first: 20) { edges { node { name
    stats { salesCount medianPrice p25Price p75Price medianPricePerM2 } } } } }"""
WINDOWED = """{ localities(first: 20) { edges { node { name
    stats(from: "2024-01-01") { salesCount medianPrice } } } } }"""
RECORD_SALE = """mutation($input: RecordSaleInput!) { recordSale(input: $input) {
    id isMarketSale } }"""
PROPERTY_IDS = "{ properties(first: 3) { nodes { id } } }"
LIVE = """
SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY price),
    percentile_cont(0.25) WITHIN GROUP (ORDER BY price),
    percentile_cont(0.75) WITHIN GROUP (ORDER BY price),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY price / area_m2) FILTER (WHERE area_m2 > 0)
FROM sales WHERE locality_id = $1 AND is_market_sale
"""
FIELDS = ("salesCount", "medianPrice", "p25Price", "p75Price", "medianPricePerM2")


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this module's own: its tests record sales."""
    name = pg_database_name("stats_summary")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


async def fetch(url: str, sql: str, *args: Any) -> list[Any]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def locality_id(url: str) -> int:
    rows = await fetch(url, "SELECT id FROM localities WHERE name = $1", SMALL_LOCALITY)
    return int(rows[0][0])


async def live(url: str) -> dict[str, Any]:
    row = (await fetch(url, LIVE, await locality_id(url)))[0]
    return dict(zip(FIELDS, row, strict=True))


async def summary(url: str) -> tuple[int, int, int] | None:
    """(the locality's version, the summary row's version, its sales count)."""
    rows = await fetch(
        url,
        """SELECT l.stats_version, m.stats_version, m.sales_count FROM localities l
           JOIN locality_stats_summary m ON m.locality_id = l.id WHERE l.id = $1""",
        await locality_id(url),
    )
    return (rows[0][0], rows[0][1], rows[0][2]) if rows else None


async def served(app: RunningApp) -> tuple[dict[str, Any], int | None]:
    response = await gql(app.client, STATS)
    nodes = [e["node"] for e in response.ok()["localities"]["edges"]]
    (node,) = [n for n in nodes if n["name"] == SMALL_LOCALITY]
    return node["stats"], response.statements


async def record(app: RunningApp, price: int) -> dict[str, Any]:
    property_id = (await gql(app.client, PROPERTY_IDS)).ok()["properties"]["nodes"][0]["id"]
    sale = {
        "propertyId": property_id,
        "contractDate": "2024-06-01",
        "price": price,
        "dealingNumber": f"SS{time.time_ns() % 10**9:09d}",
        "areaM2": 250.0,
    }
    recorded: dict[str, Any] = (await gql(app.client, RECORD_SALE, headers=ADMIN, input=sale)).ok()[
        "recordSale"
    ]
    return recorded


async def test_served_from_the_summary_while_nothing_is_written(database: str) -> None:
    await fetch(database, "DELETE FROM locality_stats_summary")
    async with running_app(settings_for(database)) as app:
        first, first_statements = await served(app)
        assert first == await live(database)
        version, stored_at, count = await summary(database) or (None, None, None)
        assert stored_at == version  # stored at the version it was read at
        assert count == first["salesCount"]
        again, again_statements = await served(app)
        assert again == first
        assert again_statements == first_statements  # one statement for the batch, as before
        assert await summary(database) == (version, stored_at, count)


async def test_every_sale_write_is_seen(database: str) -> None:
    async with running_app(settings_for(database)) as app:
        before, _ = await served(app)
        assert before == await live(database)
        version = (await summary(database) or (0,))[0]

        assert (await record(app, 4_321_000))["isMarketSale"] is True
        after, _ = await served(app)
        assert after == await live(database)
        assert after["salesCount"] == before["salesCount"] + 1
        assert await summary(database) == (version + 1, version + 1, after["salesCount"])

        # A sale below $1,000 is kept but is no market sale: the figures do not move.
        assert (await record(app, 500))["isMarketSale"] is False
        assert (await served(app))[0] == after == await live(database)

        # A window is computed live, as before (the summary serves only the default window).
        windowed = (await gql(app.client, WINDOWED)).ok()["localities"]["edges"]
        (node,) = [e["node"] for e in windowed if e["node"]["name"] == SMALL_LOCALITY]
        rows = await fetch(
            database,
            "SELECT count(*) FROM sales WHERE locality_id = $1 AND is_market_sale"
            " AND contract_date >= '2024-01-01'",
            await locality_id(database),
        )
        assert node["stats"]["salesCount"] == rows[0][0]


async def test_a_fill_from_an_older_snapshot_is_never_served(database: str) -> None:
    """A read computes the figures in a snapshot taken before a write commits and stores
    them after it: they are stored at the version of that snapshot, so the next read
    recomputes instead of serving them."""
    # The app's own statement, as the app sends it ($1), run on a connection of the test's.
    dialect = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
    compiled = SUMMARISED_STATS.compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True}
    )
    ident = await locality_id(database)
    async with running_app(settings_for(database)) as app:
        await fetch(database, "DELETE FROM locality_stats_summary")
        before = await live(database)
        slow = await asyncpg.connect(database)
        try:
            transaction = slow.transaction(isolation="repeatable_read")
            await transaction.start()
            await slow.fetch("SELECT 1")  # the snapshot is taken here
            assert (await record(app, 3_999_000))["isMarketSale"] is True
            old = await slow.fetch(compiled.string, [ident])
            await transaction.commit()
        finally:
            await slow.close()
        assert old[0][1] == before["salesCount"]  # figures of the older snapshot...
        version, stored_at, count = await summary(database) or (None, None, None)
        assert stored_at is not None
        assert version == stored_at + 1  # ...stored stale by version
        assert count == before["salesCount"]
        now, _ = await served(app)
        assert now == await live(database)
        assert now["salesCount"] == before["salesCount"] + 1
        assert await summary(database) == (version, version, now["salesCount"])


async def test_the_ingest_bump_covers_new_and_restated_sales(database: str) -> None:
    """BUMP_STAGED_STATS_VERSIONS, run in the merge's session: the localities of the staged
    sales, and those of the sales held that a restatement may move elsewhere."""
    tempe = await locality_id(database)
    connection = await asyncpg.connect(database)
    try:
        other = await connection.fetchval(
            """INSERT INTO localities (name, postcode, state) VALUES ('SUMMARY TEST', '9999', 'NSW')
               ON CONFLICT (name, postcode) DO UPDATE SET state = excluded.state RETURNING id"""
        )
        held = await connection.fetchrow(
            "SELECT property_id, dealing_number FROM sales WHERE locality_id = $1 LIMIT 1", tempe
        )
        before = dict(await connection.fetch("SELECT id, stats_version FROM localities"))
        for statement in merge_sql.CREATE_TEMPORARY_TABLES:
            await connection.execute(statement)
        # A staged sale now in the other locality, restating one held in TEMPE.
        await connection.execute("INSERT INTO stage_dedup (locality_id) VALUES ($1)", other)
        await connection.execute(
            "INSERT INTO stage_keyed (property_id, locality_id, dealing_number) VALUES ($1, $2, $3)",
            held["property_id"],
            other,
            held["dealing_number"],
        )
        async with connection.transaction():
            await connection.execute(BUMP_STAGED_STATS_VERSIONS)
        after = dict(await connection.fetch("SELECT id, stats_version FROM localities"))
    finally:
        await connection.close()
    assert {k for k in after if after[k] != before[k]} == {tempe, other}
    assert after[tempe] == before[tempe] + 1
