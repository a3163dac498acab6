"""The database advisor over HTTP: `databaseInsights`, `explainOperation`, `propintel db-report`.

The PostgreSQL checks run on a database of this module's own (migrated, empty but for the
scratch tables the tests make), so pg_stat_statements there holds the tests' statements and
the app's only. Setup SQL runs through asyncpg, as an operator's psql would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.auth.principal import Role
from app.settings import Settings
from db.migrate import upgrade
from tests.support.apps import AppFactory, running_app
from tests.support.credentials import ADMIN, bearer
from tests.support.databases import create_pg_database, drop_pg_database, pg_database_name
from tests.support.graphql import gql
from tests.support.settings import settings_for

INSIGHTS = """query($first: Int) { databaseInsights {
  available reason notices { extension message howToEnable }
  slowQueries(first: $first) { query calls meanMs totalMs shareOfTime rows hitRatio }
  unusedIndexes(first: 100) { table index sizeBytes scans }
  duplicateIndexes { table index coveredBy }
  indexSuggestions { table columns createStatement costBefore costAfter queries }
  tables(first: 100) { name liveRows deadRows lastVacuum lastAnalyze vacuumDue analyzeDue }
  cacheHitRatio connections { active idle idleInTransaction max }
  sequencesNearLimit { name percentUsed } transactionIdAge } }"""
EXPLAIN = """query($q: String!, $v: JSON) { explainOperation(query: $q, variables: $v) {
  dialect data errors
  statements { sql parameters plan analyzed totalCost actualMs error } } }"""
NESTED = """query($name: String!, $postcode: String!) {
  locality(name: $name, postcode: $postcode) { name
    properties(first: 3, orderBy: LAST_SALE_PRICE_DESC) { totalCount
      edges { node { address sales(first: 2) { totalCount edges { node { price } } } } } } } }"""
SLOW = "SELECT pg_sleep(0.021), $1::int AS advisor_slow"
SCRATCH = "SELECT id, note FROM advisor_scratch WHERE code = $1"


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def sql(url: str, *statements: str) -> list[Any]:
    connection = await asyncpg.connect(asyncpg_url(url))
    try:
        return [await connection.fetch(statement) for statement in statements]
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def advisor_url() -> Iterator[str]:
    name = pg_database_name("insights")
    url = create_pg_database(name)
    upgrade(Settings(DATABASE_URL=url).database_url)
    asyncio.run(
        sql(
            url,
            "CREATE TABLE advisor_scratch (id serial PRIMARY KEY, code int, note text)",
            "INSERT INTO advisor_scratch (code, note) "
            "SELECT g % 40000, 'n' || g FROM generate_series(1, 200000) g",
            "CREATE TABLE advisor_indexes (a int, b int)",
            "CREATE INDEX advisor_idx_ab ON advisor_indexes (a, b)",
            "CREATE INDEX advisor_idx_a ON advisor_indexes (a)",
            "CREATE INDEX advisor_idx_b ON advisor_indexes (b)",
            "CREATE TABLE advisor_small (id smallserial PRIMARY KEY)",
            "SELECT setval('advisor_small_id_seq', 32000)",
            # The inserts' counts reach pg_stat_user_tables before ANALYZE, not after it.
            "SELECT pg_stat_force_next_flush()",
            "SELECT 1",
            "ANALYZE advisor_scratch",
        )
    )
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="module")
async def advisor_client(advisor_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings_for(advisor_url)) as running:
        yield running.client


async def insights(client: httpx.AsyncClient, **variables: Any) -> dict[str, Any]:
    report: dict[str, Any] = (await gql(client, INSIGHTS, headers=ADMIN, **variables)).ok()[
        "databaseInsights"
    ]
    return report


async def test_admin_only(advisor_client: httpx.AsyncClient) -> None:
    for document in (
        "{ databaseInsights { available } }",
        '{ explainOperation(query: "{ me { id } }") { dialect } }',
    ):
        anonymous = await gql(advisor_client, document)
        assert anonymous.error_codes() == ["UNAUTHENTICATED"]
        assert anonymous.data is None
        user = await gql(advisor_client, document, headers=bearer(7, Role.USER))
        assert user.error_codes() == ["FORBIDDEN"]
    bad = await gql(
        advisor_client, "{ databaseInsights { slowQueries(first: 101) { calls } } }", headers=ADMIN
    )
    assert bad.error_codes() == ["BAD_USER_INPUT"]
    assert "`first`" in bad.errors[0]["message"]


async def test_a_missing_extension_is_a_notice(
    advisor_url: str, advisor_client: httpx.AsyncClient
) -> None:
    await sql(advisor_url, "DROP EXTENSION IF EXISTS pg_stat_statements")
    report = await insights(advisor_client)
    assert report["available"] is True
    notice = next(n for n in report["notices"] if n["extension"] == "pg_stat_statements")
    assert "CREATE EXTENSION pg_stat_statements" in notice["howToEnable"]
    assert report["slowQueries"] == []
    assert report["indexSuggestions"] == []
    assert report["tables"]  # the rest of the report stands


async def test_the_report_on_postgresql(
    advisor_url: str, advisor_client: httpx.AsyncClient
) -> None:
    await sql(advisor_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    hypopg_before = await sql(
        advisor_url, "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'"
    )
    connection = await asyncpg.connect(asyncpg_url(advisor_url))
    try:
        for code in range(5):  # a seq scan of 200,000 rows: an index would cut it to a few
            await connection.fetch(SCRATCH, code)
    finally:
        await connection.close()

    async def slow_calls(start: int) -> None:  # 105 calls of >= 21 ms: "slow" to pghero
        connection = await asyncpg.connect(asyncpg_url(advisor_url))
        try:
            for i in range(start, 105, 7):
                await connection.fetch(SLOW, i)
        finally:
            await connection.close()

    await asyncio.gather(*(slow_calls(start) for start in range(7)))

    report = await insights(advisor_client, first=100)
    assert report["available"] is True
    assert report["reason"] is None
    assert not [n for n in report["notices"] if n["extension"] == "pg_stat_statements"]

    slow = next(q for q in report["slowQueries"] if "advisor_slow" in q["query"])
    assert slow["calls"] >= 105
    assert slow["meanMs"] >= 20
    assert slow["totalMs"] >= slow["calls"] * 20
    assert 0 < slow["shareOfTime"] <= 1
    assert all(q["meanMs"] >= 20 and q["calls"] >= 100 for q in report["slowQueries"])

    suggestion = next(s for s in report["indexSuggestions"] if s["table"] == "advisor_scratch")
    assert suggestion["columns"] == ["code"]
    assert suggestion["costAfter"] <= suggestion["costBefore"] / 2
    assert '"code"' in suggestion["createStatement"]
    assert suggestion["createStatement"].startswith("CREATE INDEX CONCURRENTLY")
    assert any("advisor_scratch" in q and "$1" in q for q in suggestion["queries"])

    unused = {u["index"]: u for u in report["unusedIndexes"]}
    assert unused["advisor_idx_b"]["scans"] == 0
    assert unused["advisor_idx_b"]["sizeBytes"] > 0
    assert "advisor_scratch_pkey" not in unused  # unique: never "unused"
    assert {
        "table": "advisor_indexes",
        "index": "advisor_idx_a",
        "coveredBy": "advisor_idx_ab",
    } in report["duplicateIndexes"]
    assert not [d for d in report["duplicateIndexes"] if d["index"] == "advisor_idx_b"]

    scratch = next(t for t in report["tables"] if t["name"] == "advisor_scratch")
    assert scratch["liveRows"] == 200_000
    assert scratch["lastAnalyze"] is not None
    assert scratch["vacuumDue"] is True  # 200,000 rows inserted, never vacuumed
    assert scratch["analyzeDue"] is False
    sequence = next(
        s for s in report["sequencesNearLimit"] if s["name"] == "public.advisor_small_id_seq"
    )
    assert sequence["percentUsed"] == pytest.approx(100 * 32000 / 32767, abs=0.01)
    assert 0 < report["cacheHitRatio"] <= 1
    connections = report["connections"]
    assert connections["max"] >= connections["active"] + connections["idle"] >= 1
    assert report["transactionIdAge"] > 0

    # Nothing left behind: no real index, HypoPG as it was (created in a rolled-back
    # transaction), no hypothetical index in the app's pooled connections.
    indexes, hypopg_after = await sql(
        advisor_url,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'advisor_scratch'",
        "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'",
    )
    assert [r[0] for r in indexes] == ["advisor_scratch_pkey"]
    assert hypopg_after == hypopg_before[0]
    explained = (
        await gql(
            advisor_client, EXPLAIN, headers=ADMIN, q="{ properties(first: 1) { totalCount } }"
        )
    ).ok()
    assert explained["explainOperation"]["statements"]


async def test_explain_operation(pg_redis_app: AppFactory) -> None:
    # The cache on, and Strawberry's executor (what explainOperation runs) for the counts.
    async with pg_redis_app(PROPINTEL_COMPILED_EXECUTION=False) as app:
        variables = {"name": "TEMPE", "postcode": "2044"}
        plain = await gql(app.client, NESTED, **variables)
        data = plain.ok()
        assert data["locality"]["properties"]["edges"]
        assert plain.statements
        assert plain.statements >= 3
        assert (await gql(app.client, NESTED, **variables)).statements == 0  # cached now

        answer = (await gql(app.client, EXPLAIN, headers=ADMIN, q=NESTED, v=variables)).ok()
        explained = answer["explainOperation"]
        assert explained["dialect"] == "postgresql"
        assert explained["data"] == data
        assert explained["errors"] is None
        statements = explained["statements"]
        assert len(statements) == plain.statements  # the cache was bypassed
        for statement in statements:
            assert statement["error"] is None, statement
            assert statement["analyzed"] is True
            assert statement["actualMs"] >= 0
            assert statement["totalCost"] > 0
            assert statement["plan"]["Plan"]["Node Type"]
            assert "Execution Time" in statement["plan"]
        assert any("TEMPE" in str(s["parameters"]) for s in statements)

        for document, argument in (
            ("mutation { logout(allSessions: true) }", "query"),
            ("subscription { alerts { id } }", "query"),
            ("{ locality(", "query"),
            ("query A { me { id } } query B { me { id } }", "query"),
        ):
            refused = await gql(app.client, EXPLAIN, headers=ADMIN, q=document)
            assert refused.error_codes() == ["BAD_USER_INPUT"], refused.errors
            assert refused.errors[0]["extensions"]["argument"] == argument
            assert f"`{argument}`" in refused.errors[0]["message"]
        inner = (
            await gql(
                app.client,
                EXPLAIN,
                headers=ADMIN,
                q='{ explainOperation(query: "{ me { id } }") { dialect } }',
            )
        ).ok()
        assert inner["explainOperation"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_sqlite_says_not_available(sqlite_app: AppFactory) -> None:
    async with sqlite_app() as app:
        report = await insights(app.client)
        assert report["available"] is False
        assert "not available on SQLite" in report["reason"]
        assert report["slowQueries"] == report["unusedIndexes"] == report["tables"] == []
        assert report["connections"] is None
        assert report["transactionIdAge"] is None
        query = '{ locality(name: "TEMPE", postcode: "2044") { name stats { salesCount } } }'
        explained = (await gql(app.client, EXPLAIN, headers=ADMIN, q=query)).ok()[
            "explainOperation"
        ]
        assert explained["dialect"] == "sqlite"
        assert explained["statements"]
        for statement in explained["statements"]:
            assert statement["error"] is None
            assert statement["analyzed"] is False
            assert statement["totalCost"] is None
            assert statement["plan"]
            assert "detail" in statement["plan"][0]


def db_report(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "db-report"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_report(advisor_url: str, sqlite_url: str) -> None:
    asyncio.run(sql(advisor_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
    report = db_report(advisor_url)
    assert report.returncode == 0, report.stderr
    for heading in (
        "Slow queries",
        "Index suggestions",
        "Unused indexes",
        "Duplicate indexes",
        "Tables",
        "cache hit ratio",
        "Sequences near their limit",
    ):
        assert heading in report.stdout
    assert "advisor_idx_a" in report.stdout
    assert "advisor_small_id_seq" in report.stdout
    tables = report.stdout.split("Tables (most dead rows first)")[1]
    assert any(
        line.split()[:2] == ["advisor_scratch", "200,000"] for line in tables.splitlines()
    )  # aligned columns, readable numbers

    sqlite = db_report(sqlite_url)
    assert sqlite.returncode == 0
    assert "not available" in sqlite.stdout

    down = db_report("postgresql://postgres@127.0.0.1:9/nowhere")
    assert down.returncode == 1
    assert len(down.stderr.strip().splitlines()) == 1
    assert down.stderr.startswith("propintel: ")
