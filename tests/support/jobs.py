"""Job queue test helpers: empty databases of a test's own (PostgreSQL or SQLite, migrated,
no data: a worker there runs only the test's jobs), a throwaway PostgreSQL cluster (to
restart under a worker without touching the shared server), and small queries."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa

from app.settings import Settings
from db import tables
from db.engine import Database, create_engine
from db.migrate import upgrade
from db.repositories.jobs import JobRow, job_rows
from tests.support.databases import create_pg_database, drop_pg_database, pg_database_name
from tests.support.settings import settings_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def empty_pg_database(purpose: str) -> Iterator[str]:
    """A migrated, empty PostgreSQL database of the caller's own (dropped afterwards)."""
    name = pg_database_name(purpose)
    url = create_pg_database(name)
    upgrade(Settings(DATABASE_URL=url).database_url)
    try:
        yield url
    finally:
        drop_pg_database(name)


async def empty_sqlite_database(path: Path) -> str:
    """A migrated, empty SQLite database at `path` (migrations run in a thread: alembic's
    env runs an event loop of its own)."""
    url = f"sqlite:///{path}"
    await asyncio.to_thread(upgrade, Settings(DATABASE_URL=url).database_url)
    return url


def database(url: str, **overrides: Any) -> Database:
    settings = settings_for(url, **overrides)
    return Database(create_engine(settings.database_url, pool_size=20), pool_size=20)


async def clear_queue(db: Database) -> None:
    async with db.begin() as conn:
        for table in (tables.jobs, tables.periodic_runs, tables.job_workers):
            await conn.execute(sa.delete(table))


async def rows(db: Database, kind: str | None = None) -> list[JobRow]:
    return await job_rows(db, kind=kind)


async def wait_for(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,  # noqa: ASYNC109 (a polling helper: the timeout is its subject)
    every: float = 0.05,
) -> float:
    """Polls `check` until true; returns the seconds it took (fails past `timeout`)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScratchCluster:
    """A PostgreSQL 15 cluster of the test's own (initdb in a temporary directory, trust
    auth, a free port), which a test may restart; run as the `postgres` user when the tests
    run as root (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="propintel-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w",
            *extra, action,
        )  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("stop", "-m", "immediate")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> str:
        connection = await asyncpg.connect(self.url())
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
