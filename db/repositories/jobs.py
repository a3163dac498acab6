"""The job queue's SQL: enqueue (inside the caller's transaction: the outbox), claim, finish.

`enqueue` takes the caller's connection, so a job is committed with the change that caused it
or not at all. On PostgreSQL it also NOTIFYs `propintel_jobs` (delivered at commit), which
wakes the workers at once; they poll as well, in case a notification is missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db import tables

NOTIFY_CHANNEL = "propintel_jobs"
DEFAULT_MAX_ATTEMPTS = 5


def _insert(conn: AsyncConnection) -> Any:
    if conn.dialect.name == "postgresql":
        return pg_insert(tables.jobs)
    return sqlite_insert(tables.jobs)


async def enqueue_many(
    conn: AsyncConnection,
    kind: str,
    payloads: Sequence[Mapping[str, Any]],
    *,
    run_at: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dedupe_keys: Sequence[str | None] | None = None,
) -> int:
    """Adds one job per payload, due at `run_at` (default now); a job whose dedupe key is
    already taken is skipped. Returns how many were added."""
    if not payloads:
        return 0
    now = datetime.now(UTC)
    keys = list(dedupe_keys) if dedupe_keys is not None else [None] * len(payloads)
    rows = [
        {
            "kind": kind,
            "payload": orjson.dumps(dict(payload)).decode(),
            "status": "QUEUED",
            "run_at": run_at or now,
            "attempts": 0,
            "max_attempts": max_attempts,
            "dedupe_key": key,
            "created_at": now,
        }
        for payload, key in zip(payloads, keys, strict=True)
    ]
    statement = _insert(conn).on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await conn.execute(statement, rows)
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return max(result.rowcount, 0)


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    payload: Mapping[str, Any],
    *,
    run_at: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dedupe_key: str | None = None,
) -> bool:
    """Adds one job (see enqueue_many); False when its dedupe key was taken."""
    added = await enqueue_many(
        conn,
        kind,
        [payload],
        run_at=run_at,
        max_attempts=max_attempts,
        dedupe_keys=[dedupe_key],
    )
    return added == 1
