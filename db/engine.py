"""The async engine, its per-dialect tuning, and SQL statement counting.

Statement counting is how tests (and developers, through response extensions) check that a
nested query costs a bounded number of statements: every statement sent to the database bumps
the counter of the request it runs for, found through a context variable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.telemetry.labels import BatchedObservations, BatchedValue
from app.telemetry.request import count_statement as count_for_request

if TYPE_CHECKING:
    from prometheus_client.metrics import Gauge


@dataclass
class StatementLog:
    count: int = 0
    statements: list[str] = field(default_factory=list)
    parameters: list[Any] | None = None
    """Each statement's bound values, in order, when asked for (`count_statements(
    with_parameters=True)`: the database advisor explains the statements it saw)."""


_statement_log: ContextVar[StatementLog | None] = ContextVar("statement_log", default=None)


@contextmanager
def count_statements(*, with_parameters: bool = False) -> Iterator[StatementLog]:
    """Count the statements run in this context (and the tasks it spawns)."""
    log = StatementLog(parameters=[] if with_parameters else None)
    token = _statement_log.set(log)
    try:
        yield log
    finally:
        _statement_log.reset(token)


@dataclass(frozen=True, slots=True)
class _PoolInstruments:
    in_use: BatchedValue
    size: Gauge
    acquire: BatchedObservations
    statements: BatchedValue


@dataclass(frozen=True, slots=True)
class _Instruments:
    """The pools' metric children, resolved once per process (not per statement)."""

    reads: _PoolInstruments
    """The asyncpg pool behind PostgreSQL reads."""
    writes: _PoolInstruments
    """SQLAlchemy's pool: writes, the ingest, and every statement on SQLite."""


@cache
def _instruments() -> _Instruments:
    # Imported here, not at the top: app.cli imports this module before `propintel serve`
    # sets the metrics directory (app/telemetry/multiprocess.py).
    from app.telemetry import metrics

    def pool(name: str) -> _PoolInstruments:
        # Every statement moves these: added up and written in batches
        # (app/telemetry/labels.py); the size moves once per handle.
        return _PoolInstruments(
            in_use=BatchedValue(metrics.db_pool_in_use.labels(name)),
            size=metrics.db_pool_size.labels(name),
            acquire=BatchedObservations(metrics.db_pool_acquire.labels(name)),
            statements=BatchedValue(metrics.db_statements.labels(name)),
        )

    return _Instruments(reads=pool("reads"), writes=pool("writes"))


def _on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
    _count_statement(statement, parameters)
    _instruments().writes.statements.inc()


def _on_checkout(*_args: Any) -> None:
    _instruments().writes.in_use.inc()


def _on_checkin(*_args: Any) -> None:
    _instruments().writes.in_use.dec()


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
    database_url: str,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int = 5000,
    ssl: Any = None,
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
                },
                **({"ssl": ssl} if ssl is not None else {}),
            },
        )
    event.listen(engine.sync_engine, "before_cursor_execute", _on_execute)
    # Connections checked out of SQLAlchemy's pool (propintel_db_pool_in_use{pool="writes"}).
    event.listen(engine.sync_engine, "checkout", _on_checkout)
    event.listen(engine.sync_engine, "checkin", _on_checkin)
    return engine


def _most_connections(engine: AsyncEngine) -> int:
    """What SQLAlchemy's pool may open: its size and overflow (0 for pools without a
    bound, e.g. SQLite's)."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return 0
    return int(size()) + overflow


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]


def _count_statement(statement: str, parameters: Any = ()) -> None:
    count_for_request()
    log = _statement_log.get()
    if log is not None:
        log.count += 1
        log.statements.append(statement)
        if log.parameters is not None:
            log.parameters.append(parameters)


async def _keep_session(_connection: Any) -> None:
    """No reset on release: these connections only run SELECTs and never change session
    state, so asyncpg's default reset (a round trip per release) buys nothing."""


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _raw_bytes(value: bytes) -> bytes:
    return value


async def _json_as_bytes(connection: Any) -> None:
    """`json` values as the bytes PostgreSQL sent: the JSON read path embeds them unparsed
    (orjson.Fragment, db/repositories/json_pages.py), so even the str decode is skipped.
    (The binary form of `json` is its text.) No other read returns `json`."""
    await connection.set_type_codec(
        "json", schema="pg_catalog", encoder=_as_bytes, decoder=_raw_bytes, format="binary"
    )


class Guard(Protocol):
    """Runs a call under a dependency's resilience policy (app/resilience): the call gets the
    seconds it may take; `self_timed` says it enforces them itself."""

    def __call__(
        self, operation: Callable[[float], Awaitable[Any]], *, self_timed: bool = ...
    ) -> Awaitable[Any]: ...


class Database:
    """The one handle the rest of the code has on the database.

    Reads on PostgreSQL skip SQLAlchemy's execution layer: the statement is compiled once
    to `$n` SQL and run on a plain asyncpg pool, whose per-connection prepared-statement
    cache then serves every repeat. (SQLAlchemy still builds the SQL, runs the writes, the
    ingest and the migrations, and everything on SQLite.) Profiling showed the execution
    layer (result wrappers, greenlet hops) to cost more than the statements themselves.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        pool_size: int = 10,
        statement_timeout_ms: int = 5000,
        guard: Guard | None = None,
        ssl: Any = None,
    ) -> None:
        self.engine = engine
        self._ssl = ssl
        self.guard = guard
        """Wraps every PostgreSQL read (app/resilience: bulkhead, retry, breaker, timeout)."""
        self.dialect: str = engine.dialect.name
        self._pool_size = pool_size
        self._statement_timeout_ms = statement_timeout_ms
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._compiled: dict[int, tuple[sa.Executable, _Compiled]] = {}
        self._metrics = _instruments()
        # Pool sizes (what each pool may open) are added while this handle lives and taken
        # back at `dispose`, so a process's gauges add up its handles (a short-lived one in
        # `serve`'s parent too).
        self._writes_size = _most_connections(engine)
        self._reads_size = pool_size if self.is_postgresql else 0  # the pool opens lazily
        self._metrics.writes.size.inc(self._writes_size)
        self._metrics.reads.size.inc(self._reads_size)
        self._disposed = False

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    async def _asyncpg_pool(self) -> Any:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    import asyncpg

                    url = self.engine.url.set(drivername="postgresql")
                    self._pool = await asyncpg.create_pool(
                        url.render_as_string(hide_password=False),
                        min_size=1,
                        max_size=self._pool_size,
                        reset=_keep_session,
                        init=_json_as_bytes,
                        ssl=self._ssl,
                        server_settings={
                            "application_name": "propintel",
                            "statement_timeout": str(self._statement_timeout_ms),
                        },
                    )
        return self._pool

    def _compile(self, statement: sa.Executable, *, cache: bool) -> _Compiled:
        cached = self._compiled.get(id(statement)) if cache else None
        if cached is not None and cached[0] is statement:
            return cached[1]
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        result = _Compiled(
            compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params)
        )
        if cache:
            self._compiled[id(statement)] = (statement, result)  # keeps `statement` alive
        return result

    async def fetch_all(
        self,
        statement: sa.Executable,
        params: Mapping[str, Any] | None = None,
        *,
        prepared: bool = False,
    ) -> Sequence[Any]:
        """Rows (typed Any: callers unpack them positionally into records).

        `prepared=True` for statements built once and reused (their compiled SQL is cached)."""
        if self.is_postgresql:
            compiled = self._compile(statement, cache=prepared)
            values = {**compiled.defaults, **(params or {})}
            arguments = [values[name] for name in compiled.names]
            _count_statement(compiled.sql, arguments)
            reads = self._metrics.reads
            reads.statements.inc()

            async def fetch(budget: float | None) -> Sequence[Any]:
                pool = await self._asyncpg_pool()
                # What pool.fetch does, with the wait for a connection timed.
                started = time.perf_counter()
                async with pool.acquire() as connection:
                    reads.acquire.observe(time.perf_counter() - started)
                    reads.in_use.inc()
                    try:
                        return await connection.fetch(compiled.sql, *arguments, timeout=budget)  # type: ignore[no-any-return]
                    finally:
                        reads.in_use.dec()

            if self.guard is None:
                return await fetch(None)
            return await self.guard(fetch, self_timed=True)  # type: ignore[no-any-return]
        async with self.engine.connect() as conn:
            result = await conn.execute(statement, dict(params or {}))
            return result.all()

    async def fetch_one(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Any:
        rows = await self.fetch_all(statement, params)
        return rows[0] if rows else None

    def begin(self) -> Any:
        """A connection in a transaction that commits on success, rolls back on error."""
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    async def ping(self) -> None:
        await self.fetch_all(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if not self._disposed:
            self._disposed = True
            self._metrics.writes.size.dec(self._writes_size)
            self._metrics.reads.size.dec(self._reads_size)
        await self.engine.dispose()


async def raw_asyncpg_connection(conn: AsyncConnection) -> Any:
    """The driver connection under a SQLAlchemy one, for COPY (PostgreSQL only)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection
