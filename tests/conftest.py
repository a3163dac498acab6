"""Fixtures: real PostgreSQL and SQLite databases holding a slice of the real data, and HTTP
clients that drive the ASGI app over httpx.

The slice (a few localities, every year) is loaded once per session into each backend.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.asgi import create_app
from app.cli import load_sales, sale_files
from app.settings import Profile, Settings
from db.migrate import upgrade
from tests.credentials import BOOTSTRAP_KEY, JWT_SECRET
from tests.reference import Reference, read_reference

DATA_DIR = Path(__file__).resolve().parents[1] / "../shared/data"
SLICE = frozenset({"ERSKINEVILLE", "ABERDARE", "TEMPE", "BRANXTON"})
PG_ADMIN_URL = os.environ.get(
    "PROPINTEL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PG_TEST_DB = f"propintel_test_{os.getpid()}"


def pg_url(database: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


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


def settings_for(url: str, **overrides: Any) -> Settings:
    """Test settings. The cache and rate limits are off unless a test turns them on: most
    tests check what the database path does (results, statement counts) and walk whole
    lists; tests/test_cache*.py and tests/test_rate_limits.py check those."""
    values: dict[str, Any] = {
        "DATABASE_URL": url,
        "PROPINTEL_PROFILE": Profile.TEST,
        "PROPINTEL_DATA_DIR": DATA_DIR,
        "PROPINTEL_CACHE_ENABLED": False,
        "PROPINTEL_RATE_LIMIT_ENABLED": False,
        "PROPINTEL_TRAIN_ON_START": False,
        "JWT_SECRET": JWT_SECRET,
        "ADMIN_API_KEY": BOOTSTRAP_KEY,
        **overrides,
    }
    return Settings(**values)


def load_slice(url: str) -> None:
    upgrade(Settings(DATABASE_URL=url).database_url)
    files = sale_files([DATA_DIR])
    asyncio.run(load_sales(settings_for(url), files, localities=SLICE, show_progress=False))


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
    url = create_pg_database(PG_TEST_DB)
    load_slice(url)
    yield url
    drop_pg_database(PG_TEST_DB)


@pytest.fixture(scope="session")
def sqlite_url(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'slice.sqlite3'}"
    load_slice(url)
    return url


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once per backend: the core queries must agree on both."""
    return str(
        request.getfixturevalue(
            f"{request.param}_url" if request.param == "sqlite" else "postgres_url"
        )
    )


async def _client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://propintel.test") as client:
        yield client
    await app.state.db.dispose()


@pytest.fixture(scope="session")
async def client(backend_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(backend_url):
        yield c


@pytest.fixture(scope="session")
async def pg_client(postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(postgres_url):
        yield c


class GraphQLResponse:
    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        self.body: dict[str, Any] = response.json()
        self.data: Any = self.body.get("data")
        self.errors: list[dict[str, Any]] = self.body.get("errors") or []
        self.statements: int | None = (self.body.get("extensions") or {}).get("sqlStatements")

    def ok(self) -> Any:
        assert not self.errors, self.errors
        return self.data

    def error_codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]


async def gql(client: httpx.AsyncClient, query: str, **variables: Any) -> GraphQLResponse:
    """POSTs `query` with `variables`; a `headers` variable (a dict) is sent as HTTP headers."""
    headers = variables.pop("headers", None) or {}
    return GraphQLResponse(
        await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    )
