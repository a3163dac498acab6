"""How long matching a batch of new sales against saved searches takes (issue 14's target:
one weekly VG file, about 4,000 sales, against 100,000 searches in under 10 s on PostgreSQL).

Run on demand (not part of the test suite), on a PostgreSQL database holding the data
(`propintel load-data` of ../shared/data; default: database `propintel_full`):

    .venv/bin/python -m bench.alert_matching [--database-url URL] [--searches 10000,100000,300000]
        [--sales 1000,4000,16000] [--repeat 3]

Nothing is left behind: the users and saved searches are inserted inside one transaction
that is rolled back at the end, and each timed `match_sales` (the real function, with its
webhook deliveries and jobs) runs in a savepoint rolled back after it, so every run matches
the same sales afresh. Searches are spread as users make them: over the places that sell
(a locality picked in proportion to its sales in the data, so busy suburbs have more
searches), 70% anchored on a locality name, 17% on a postcode, 5% on a district (a whole
LGA) and 8% on a bounding box alone (2 to 10 km around a locality); 85% with a budget (a band
of +-10 to 30% around a price drawn near the local median), 60% with strata or not, 40%
houses only, 15% a minimum land area; 60% INSTANT, 30% DAILY, 10% WEEKLY. The sales are a
range of consecutive ids from the 2024 file (it was parsed from the weekly files in order, so
a range of ids is a run of weeks, state-wide).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Database, create_engine, raw_asyncpg_connection
from db.repositories.alerts import MatchResult, match_sales

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/propintel_full"
SEARCHES_PER_USER = 5
SEARCH_COLUMNS = (
    "user_id",
    "name",
    "frequency",
    "filter",
    "anchor",
    "locality_name",
    "postcode",
    "district",
    "is_strata",
    "nature",
    "min_area_m2",
    "max_area_m2",
    "min_price",
    "max_price",
    "sold_after",
    "sold_before",
    "min_lat",
    "min_lon",
    "max_lat",
    "max_lon",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    postcode: str
    district: str | None
    latitude: float | None
    longitude: float | None
    median_price: float
    sales: int


async def places(conn: AsyncConnection) -> list[Place]:
    rows = await conn.execute(
        sa.text(
            """
            SELECT l.name, l.postcode, max(p.district), max(l.latitude), max(l.longitude),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY s.price), count(*)
            FROM sales s JOIN properties p ON p.id = s.property_id
            JOIN localities l ON l.id = p.locality_id
            WHERE s.contract_date >= DATE '2022-01-01' AND s.is_market_sale
            GROUP BY l.name, l.postcode
            """
        )
    )
    return [Place(*row) for row in rows]


def search_rows(
    n: int, first_user: int, everywhere: list[Place], seed: int
) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    weights = [p.sales for p in everywhere]
    picks = rng.choices(everywhere, weights=weights, k=n)
    now = datetime.now(UTC)
    rows = []
    for i, place in enumerate(picks):
        roll = rng.random()
        columns: dict[str, Any] = dict.fromkeys(SEARCH_COLUMNS)
        if roll < 0.70:
            columns["anchor"] = f"L:{place.name.upper()}"
            columns["locality_name"] = place.name.upper()
        elif roll < 0.87:
            columns["anchor"] = f"P:{place.postcode}"
            columns["postcode"] = place.postcode
        elif roll < 0.92 and place.district:
            columns["anchor"] = f"D:{place.district.upper()}"
            columns["district"] = place.district.upper()
        elif place.latitude is not None and place.longitude is not None:
            half = rng.uniform(0.01, 0.05)  # 2 to 10 km across
            columns["anchor"] = "B"
            columns["min_lat"], columns["max_lat"] = place.latitude - half, place.latitude + half
            columns["min_lon"], columns["max_lon"] = (
                place.longitude - half,
                place.longitude + half,
            )
        else:
            columns["anchor"] = f"P:{place.postcode}"
            columns["postcode"] = place.postcode
        if rng.random() < 0.85:  # a budget: a band around a price near the local median
            budget = place.median_price * rng.lognormvariate(0, 0.35)
            columns["min_price"] = int(budget * rng.uniform(0.7, 0.9))
            columns["max_price"] = int(budget * rng.uniform(1.1, 1.3))
        if rng.random() < 0.6:
            columns["is_strata"] = rng.random() < 0.4
        if rng.random() < 0.4:
            columns["nature"] = "R"
        if rng.random() < 0.15:
            columns["min_area_m2"] = rng.choice([200.0, 400.0, 600.0])
        if rng.random() < 0.05:
            columns["sold_after"] = date(2023, 1, 1)
        frequency = rng.random()
        columns["frequency"] = (
            "INSTANT" if frequency < 0.6 else "DAILY" if frequency < 0.9 else "WEEKLY"
        )
        columns["user_id"] = first_user + i // SEARCHES_PER_USER
        columns["name"] = f"bench {i}"
        columns["filter"] = "{}"
        columns["created_at"] = columns["updated_at"] = now
        rows.append(tuple(columns[c] for c in SEARCH_COLUMNS))
    return rows


async def add_searches(conn: AsyncConnection, n: int, everywhere: list[Place], seed: int) -> None:
    users = (n + SEARCHES_PER_USER - 1) // SEARCHES_PER_USER
    first_user = (
        (
            await conn.execute(
                sa.text(
                    "INSERT INTO users (email, password_hash, role) "
                    "SELECT 'bench-' || :seed || '-' || g || '@example.com', 'x', 'USER' "
                    "FROM generate_series(1, :n) g RETURNING id"
                ),
                {"seed": str(seed), "n": users},
            )
        )
        .scalars()
        .all()
    )
    driver = await raw_asyncpg_connection(conn)
    await driver.copy_records_to_table(
        "saved_searches",
        records=search_rows(n, min(first_user), everywhere, seed),
        columns=SEARCH_COLUMNS,
    )
    await conn.execute(sa.text("ANALYZE saved_searches"))


async def sale_range(conn: AsyncConnection, count: int) -> tuple[int, int, int]:
    """`count` consecutive sale ids from the middle of the 2024 file: (first, last,
    localities they are in)."""
    low, high = (
        await conn.execute(
            sa.text(
                "SELECT min(id), max(id) FROM sales "
                "WHERE source_file LIKE '%2024%' AND source_file NOT LIKE 'api:%'"
            )
        )
    ).one()
    if low is None:
        raise SystemExit("no 2024 sales: load ../shared/data first (propintel load-data)")
    first = (low + high) // 2 - count // 2
    last = first + count - 1
    localities = (
        await conn.execute(
            sa.text(
                "SELECT count(DISTINCT p.locality_id) FROM sales s "
                "JOIN properties p ON p.id = s.property_id WHERE s.id BETWEEN :a AND :b"
            ),
            {"a": first, "b": last},
        )
    ).scalar_one()
    return first, last, int(localities)


async def timed_match(conn: AsyncConnection, first: int, last: int) -> tuple[float, MatchResult]:
    savepoint = await conn.begin_nested()
    try:
        started = time.perf_counter()
        result = await match_sales(conn, first, last)
        return time.perf_counter() - started, result
    finally:
        await savepoint.rollback()


async def run(url: str, searches: list[int], sales: list[int], repeat: int) -> None:
    db = Database(create_engine(url, pool_size=1, statement_timeout_ms=0), statement_timeout_ms=0)
    table: list[tuple[int, int, int, float, float, int, int]] = []
    try:
        async with db.engine.connect() as conn:
            transaction = await conn.begin()
            try:
                everywhere = await places(conn)
                ranges = {n: await sale_range(conn, n) for n in sales}
                have = 0
                for target in sorted(searches):
                    started = time.perf_counter()
                    await add_searches(conn, target - have, everywhere, seed=target)
                    have = target
                    print(
                        f"{target:,} saved searches in place "
                        f"({time.perf_counter() - started:.1f} s to insert)",
                        flush=True,
                    )
                    for n in sales:
                        first, last, _ = ranges[n]
                        await timed_match(conn, first, last)  # warm the caches
                        runs = [await timed_match(conn, first, last) for _ in range(repeat)]
                        seconds = [s for s, _ in runs]
                        result = runs[-1][1]
                        table.append(
                            (
                                target,
                                n,
                                ranges[n][2],
                                statistics.median(seconds),
                                min(seconds),
                                len(result.alert_ids),
                                result.digest_matches,
                            )
                        )
                        print(
                            f"  {n:>6,} sales: median {statistics.median(seconds):6.2f} s, "
                            f"{len(result.alert_ids):,} alerts, "
                            f"{result.digest_matches:,} digest matches",
                            flush=True,
                        )
            finally:
                await transaction.rollback()  # nothing stays: users, searches, alerts
    finally:
        await db.dispose()
    print()
    print("| searches | sales | localities | median s | best s | alerts | digest matches |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in table:
        print(
            f"| {row[0]:,} | {row[1]:,} | {row[2]:,} | {row[3]:.2f} | {row[4]:.2f} "
            f"| {row[5]:,} | {row[6]:,} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--searches", default="10000,100000,300000")
    parser.add_argument("--sales", default="1000,4000,16000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url = args.database_url
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    asyncio.run(
        run(
            url,
            [int(n) for n in args.searches.split(",")],
            [int(n) for n in args.sales.split(",")],
            args.repeat,
        )
    )


if __name__ == "__main__":
    main()
