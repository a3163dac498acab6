"""The database advisor on the full data (4.7 million sales): a lookup made slow on purpose,
sales by dealing number (a column no index leads: the unique constraint is on
(property_id, dealing_number)), is named among the slow queries, and HypoPG confirms an
index on it would at least halve its cost. Nothing is built: the test checks that no index
was left behind.

Opt-in like tests/test_full_data.py (`scripts/test --full` sets PROPINTEL_FULL_DATA_URL).
pg_stat_statements must be loaded by the server (shared_preload_libraries); the test runs
CREATE EXTENSION in the database as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.apps import running_app
from tests.support.credentials import ADMIN
from tests.support.graphql import gql
from tests.support.settings import settings_for

pytestmark = pytest.mark.full_data

FULL_URL = os.environ.get("PROPINTEL_FULL_DATA_URL")
SLOW = "SELECT id, price FROM sales WHERE dealing_number = $1"
CALLS = 100
"""pghero counts a statement slow from 100 calls (of at least 20 ms each)."""
REPORT = """{ databaseInsights {
  available notices { extension message howToEnable }
  slowQueries(first: 100) { query calls meanMs totalMs shareOfTime rows hitRatio }
  unusedIndexes(first: 100) { table index sizeBytes scans }
  indexSuggestions(first: 100) { table columns createStatement costBefore costAfter queries }
  tables(first: 5) { name liveRows deadRows vacuumDue analyzeDue } } }"""


@pytest.fixture(scope="module")
async def full_admin() -> AsyncIterator[httpx.AsyncClient]:
    if not FULL_URL:
        pytest.fail("set PROPINTEL_FULL_DATA_URL (scripts/test --full) to run the full-data checks")
    connection = await asyncpg.connect(FULL_URL)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await connection.close()
    async with running_app(settings_for(FULL_URL)) as running:
        running.client.headers.update(ADMIN)
        yield running.client


async def _run_slow_lookups(url: str, calls: int, connections: int = 2) -> float:
    """Seconds per call: dealing numbers that match nothing, so each call reads all sales."""

    async def run(worker: int) -> None:
        connection = await asyncpg.connect(url)
        try:
            for i in range(worker, calls, connections):
                await connection.fetch(SLOW, f"NO-SUCH-DEALING-{i}")
        finally:
            await connection.close()

    started = time.monotonic()
    await asyncio.gather(*(run(w) for w in range(connections)))
    return (time.monotonic() - started) / calls * connections


async def test_the_advisor_names_a_slow_query_and_confirms_an_index(
    full_admin: httpx.AsyncClient,
) -> None:
    assert FULL_URL is not None
    per_call = await _run_slow_lookups(FULL_URL, CALLS)
    started = time.monotonic()
    report: dict[str, Any] = (await gql(full_admin, REPORT)).ok()["databaseInsights"]
    seconds = time.monotonic() - started
    assert report["available"] is True
    assert not [n for n in report["notices"] if n["extension"] == "pg_stat_statements"]

    slow = next(q for q in report["slowQueries"] if "dealing_number = $1" in q["query"])
    assert slow["calls"] >= CALLS
    assert slow["meanMs"] >= 20

    unused = report["unusedIndexes"]
    assert unused
    assert all(u["scans"] <= 50 for u in unused)
    assert all(not u["index"].endswith("_pkey") for u in unused)

    suggestion = next(
        s
        for s in report["indexSuggestions"]
        if s["table"] == "sales" and s["columns"][0] == "dealing_number"
    )
    assert suggestion["costAfter"] <= suggestion["costBefore"] / 2
    assert '"dealing_number"' in suggestion["createStatement"]
    assert any("dealing_number = $1" in q for q in suggestion["queries"])

    connection = await asyncpg.connect(FULL_URL)
    try:
        indexes = await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'sales' ORDER BY 1"
        )
    finally:
        await connection.close()
    assert not [r[0] for r in indexes if "dealing_number" in r[0] and "property" not in r[0]]

    print(  # the figures, for the report (pytest -s)
        f"\nslow lookup: {per_call * 1000:.0f} ms a call; pg_stat_statements: {slow['calls']:.0f}"
        f" calls, mean {slow['meanMs']:.0f} ms, {slow['shareOfTime']:.1%} of the time; "
        f"suggestion: {suggestion['createStatement']} cost {suggestion['costBefore']:.0f} -> "
        f"{suggestion['costAfter']:.1f}; {len(unused)} unused indexes "
        f"({', '.join(u['index'] for u in unused[:5])}); "
        f"{len(report['indexSuggestions'])} suggestions; the report took {seconds:.1f} s"
    )
