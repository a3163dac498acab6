"""The async engine, its per-dialect tuning, and SQL statement counting.

Statement counting is how tests (and developers, through response extensions) check that a
nested query costs a bounded number of statements: every statement sent to the database bumps
the counter of the request it runs for, found through a context variable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


@dataclass
class StatementLog:
    count: int = 0
    statements: list[str] = field(default_factory=list)


_statement_log: ContextVar[StatementLog | None] = ContextVar("statement_log", default=None)


@contextmanager
def count_statements() -> Iterator[StatementLog]:
    """Count the statements run in this context (and the tasks it spawns)."""
    log = StatementLog()
    token = _statement_log.set(log)
    try:
        yield log
    finally:
        _statement_log.reset(token)


def _on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    log = _statement_log.get()
    if log is not None:
        log.count += 1
        log.statements.append(statement)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while the loader writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def ensure_sqlite_directory(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(
    database_url: str, *, pool_size: int = 10, statement_timeout_ms: int = 5000
) -> AsyncEngine:
    ensure_sqlite_directory(database_url)
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(
            database_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            connect_args={
                "server_settings": {
                    "application_name": "propintel",
                    "statement_timeout": str(statement_timeout_ms),
                }
            },
        )
    event.listen(engine.sync_engine, "before_cursor_execute", _on_execute)
    return engine


class Database:
    """The one handle the rest of the code has on the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    async def fetch_all(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        """Rows (sa.Row, typed Any: callers unpack them positionally into records)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(statement, params or {})
            return result.all()

    async def fetch_one(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Any:
        async with self.engine.connect() as conn:
            result = await conn.execute(statement, params or {})
            return result.first()

    def begin(self) -> Any:
        """A connection in a transaction that commits on success, rolls back on error."""
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def raw_asyncpg_connection(conn: AsyncConnection) -> Any:
    """The driver connection under a SQLAlchemy one, for COPY (PostgreSQL only)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection
