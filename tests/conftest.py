"""Fixtures: real PostgreSQL and SQLite databases holding a slice of the real data, and the app
running with its lifespan (as `propintel serve` runs it) behind httpx clients.

The slice (a few localities, every year) is loaded once per session into each backend.
Helpers the tests import live in tests/support/; this file holds fixtures only.

The apps:

- `client` (and `pg_client`): one app per backend for the session, cache and rate limits off
  (`settings_for`: most tests check what the database path does).
- `executor_client`: the same, once per backend and executor (`executor`: compiled plans or
  Strawberry's standard executor), for the tests that count SQL statements.
- `pg_redis_app`, `sqlite_app`: factories of apps of a test's own, the cache on (PostgreSQL
  with Redis under a namespace of each app's own; SQLite with L1 only, the embedded default),
  taking a schema of the test's and settings overrides.
- `small_pg_url`: a PostgreSQL database of one locality's recent sales (quick to load).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry

from tests.support.apps import AppFactory, RunningApp, running_app, running_app_with_redis
from tests.support.databases import (
    SLICE,
    create_pg_database,
    drop_pg_database,
    load_slice,
    load_small,
    pg_database_name,
)
from tests.support.models import train_and_activate
from tests.support.reference import Reference, read_reference
from tests.support.settings import (
    COMPILED_EXECUTION,
    DATA_DIR,
    l1_cache_settings,
    redis_cache_settings,
    settings_for,
)


@pytest.fixture(scope="session")
def trained_version(postgres_url: str) -> int:
    """One small model trained on the PostgreSQL slice and made active (trained once: the
    estimates, parity and fuzz tests share it)."""
    return train_and_activate(postgres_url).version


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"the shared data directory is missing: {DATA_DIR}")
    return DATA_DIR.resolve()


@pytest.fixture(scope="session")
def reference(data_dir: Path) -> Reference:
    return read_reference(sorted(data_dir.glob("nsw_psi_sales_*.csv.gz")), set(SLICE))


@pytest.fixture(scope="session")
def postgres_url(data_dir: Path) -> Iterator[str]:
    name = pg_database_name("test")
    url = create_pg_database(name)
    load_slice(url)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_url(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'slice.sqlite3'}"
    load_slice(url)
    return url


@pytest.fixture(scope="session")
def small_pg_url(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL database of TEMPE's 2023 and 2024 sales (`load_small`), for the session.
    Tests read it; a test that writes makes a database of its own (tests/test_cache.py)."""
    name = pg_database_name("small")
    url = create_pg_database(name)
    load_small(url)
    yield url
    drop_pg_database(name)


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once per backend: the core queries must agree on both."""
    return str(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )


@pytest.fixture(scope="session", params=sorted(COMPILED_EXECUTION))
def executor(request: pytest.FixtureRequest) -> str:
    """Runs a test once per executor: "compiled" (plans, the default) and "standard"."""
    return str(request.param)


@pytest.fixture(scope="session")
async def client(backend_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings_for(backend_url)) as running:
        yield running.client


@pytest.fixture(scope="session")
async def pg_client(postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings_for(postgres_url)) as running:
        yield running.client


@pytest.fixture(scope="session")
async def executor_client(backend_url: str, executor: str) -> AsyncIterator[httpx.AsyncClient]:
    """`client` on each executor: for the tests that count SQL statements."""
    settings = settings_for(backend_url, PROPINTEL_COMPILED_EXECUTION=COMPILED_EXECUTION[executor])
    async with running_app(settings) as running:
        yield running.client


@pytest.fixture(scope="session")
def pg_redis_app(postgres_url: str) -> AppFactory:
    """Starts apps on the PostgreSQL slice with the two-tier cache on (the test Redis, a
    namespace of each app's own, its keys deleted afterwards; no warming unless
    `PROPINTEL_CACHE_WARM` asks for it):

        async with pg_redis_app(schema=my_schema, PROPINTEL_CACHE_TTL_LIST_S=1) as running:
            await gql(running.client, ...)

    Two apps given one `PROPINTEL_CACHE_NAMESPACE` share Redis as two processes would."""

    def start(
        *, schema: strawberry.Schema | None = None, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[RunningApp]:
        settings = redis_cache_settings(postgres_url, **overrides)
        forget = "PROPINTEL_CACHE_NAMESPACE" not in overrides  # a namespace of its own
        return running_app_with_redis(settings, schema=schema, forget=forget)

    return start


@pytest.fixture(scope="session")
def sqlite_app(sqlite_url: str) -> AppFactory:
    """Starts apps on the SQLite slice as the embedded default runs: the cache on, L1 only
    (no Redis), no warming unless `PROPINTEL_CACHE_WARM` asks for it."""

    def start(
        *, schema: strawberry.Schema | None = None, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[RunningApp]:
        return running_app(l1_cache_settings(sqlite_url, **overrides), schema=schema)

    return start
