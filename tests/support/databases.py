"""The test databases: PostgreSQL databases of the run's own (created and dropped here) and
the slice of the real data loaded into them."""

from __future__ import annotations

import asyncio
import os

import asyncpg

from app.cli import load_sales, sale_files
from app.settings import Settings
from db.migrate import upgrade
from tests.support.settings import DATA_DIR, settings_for

SLICE = frozenset({"ERSKINEVILLE", "ABERDARE", "TEMPE", "BRANXTON"})
"""The localities of the session's databases (every year of them)."""
SMALL_LOCALITY = "TEMPE"
SMALL_YEARS = frozenset({2023, 2024})
"""What a database of a module's own holds (`load_small`): quick to load, safe to write to."""
PG_ADMIN_URL = os.environ.get(
    "PROPINTEL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pg_url(database: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


def pg_database_name(purpose: str) -> str:
    """A database name of this test process (parallel runs do not share databases)."""
    return f"propintel_{purpose}_{os.getpid()}"


async def _pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database(name: str) -> str:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    return pg_url(name)


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def load_slice(url: str) -> None:
    """Migrates the database at `url` and loads the slice (`SLICE`, every year) into it."""
    upgrade(Settings(DATABASE_URL=url).database_url)
    files = sale_files([DATA_DIR])
    asyncio.run(load_sales(settings_for(url), files, localities=SLICE, show_progress=False))


def load_small(url: str) -> None:
    """Migrates the database at `url` and loads one locality's recent sales into it."""
    upgrade(Settings(DATABASE_URL=url).database_url)
    asyncio.run(
        load_sales(
            settings_for(url),
            sale_files([DATA_DIR], years=set(SMALL_YEARS)),
            localities=frozenset({SMALL_LOCALITY}),
            show_progress=False,
        )
    )
