"""The SQL of estimate watches (app/estimates/watches.py): which watches need checking, their
baselines (read under a row lock, moved), and ESTIMATE_CHANGED alerts.

These run as the worker (no owner scope): a check spans every user watching a property.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db import tables
from db.engine import Database
from db.repositories.batching import cached_statement

w = tables.watches
a = tables.alerts

ESTIMATE_CHANGED = "ESTIMATE_CHANGED"
_ALERT_CHUNK = 1000  # 10 parameters a row: SQLite allows 32,766 per statement


@dataclass(frozen=True, slots=True)
class WatchBaseline:
    id: int
    user_id: int
    property_id: int
    estimate_change_pct: float
    baseline_estimate: int | None
    baseline_model_version: int | None


@dataclass(frozen=True, slots=True)
class BaselineUpdate:
    watch_id: int
    estimate: int | None
    model_version: int


@dataclass(frozen=True, slots=True)
class EstimateAlert:
    user_id: int
    watch_id: int
    property_id: int
    data: str  # JSON text
    dedupe_key: str


def _not_version(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    # `<>` cannot use an index; `<` or `>` (or NULL) can, each a range of
    # ix_watches_baseline_model_version (a BitmapOr on PostgreSQL).
    version = sa.bindparam("version", type_=sa.BigInteger())
    return sa.or_(column.is_(None), column < version, column > version)


async def stale_watched_properties(
    db: Database, version: int, *, after: int, limit: int
) -> list[int]:
    """Up to `limit` property ids above `after`, ascending, with a watch not yet checked with
    model `version` (made with another model, or never estimated: baseline NULL)."""
    statement = cached_statement(
        ("stale_watched_properties", db.dialect),
        lambda: (
            sa.select(w.c.property_id)
            .where(
                _not_version(w.c.baseline_model_version),
                w.c.property_id > sa.bindparam("after", type_=sa.BigInteger()),
            )
            .group_by(w.c.property_id)
            .order_by(w.c.property_id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        ),
    )
    rows = await db.fetch_all(
        statement, {"version": version, "after": after, "limit": limit}, prepared=True
    )
    return [row[0] for row in rows]


_WATCH_COLUMNS = (
    w.c.id,
    w.c.user_id,
    w.c.property_id,
    w.c.estimate_change_pct,
    w.c.baseline_estimate,
    w.c.baseline_model_version,
)


async def lock_watches(conn: AsyncConnection, property_ids: Sequence[int]) -> list[WatchBaseline]:
    """The watches of these properties, locked until the transaction ends (PostgreSQL: FOR
    UPDATE, in id order so that two checks of overlapping batches cannot deadlock; SQLite has
    one writer at a time anyway). Two checks of one watch thus see each other's baseline."""
    if not property_ids:
        return []
    statement = (
        sa.select(*_WATCH_COLUMNS)
        .where(w.c.property_id.in_(sa.bindparam("property_ids", expanding=True)))
        .order_by(w.c.id)
        .with_for_update()
    )
    result = await conn.execute(statement, {"property_ids": list(property_ids)})
    return [WatchBaseline(*row) for row in result]


async def move_baselines(conn: AsyncConnection, updates: Sequence[BaselineUpdate]) -> None:
    if not updates:
        return
    statement = (
        sa.update(w)
        .where(w.c.id == sa.bindparam("b_id"))
        .values(
            baseline_estimate=sa.bindparam("b_estimate"),
            baseline_model_version=sa.bindparam("b_version"),
        )
    )
    await conn.execute(
        statement,
        [
            {"b_id": u.watch_id, "b_estimate": u.estimate, "b_version": u.model_version}
            for u in updates
        ],
    )


async def insert_estimate_alerts(
    conn: AsyncConnection, alerts: Sequence[EstimateAlert], *, now: datetime
) -> list[tuple[int, int]]:
    """Inserts the alerts whose dedupe key is new; (alert id, user id) of those inserted."""
    inserted: list[tuple[int, int]] = []
    insert = pg_insert(a) if conn.dialect.name == "postgresql" else sqlite_insert(a)
    for start in range(0, len(alerts), _ALERT_CHUNK):
        statement = insert.values(
            [
                {
                    "user_id": alert.user_id,
                    "kind": ESTIMATE_CHANGED,
                    "created_at": now,
                    "read_at": None,
                    "saved_search_id": None,
                    "watch_id": alert.watch_id,
                    "property_id": alert.property_id,
                    "sale_id": None,
                    "data": alert.data,
                    "dedupe_key": alert.dedupe_key,
                }
                for alert in alerts[start : start + _ALERT_CHUNK]
            ]
        ).on_conflict_do_nothing(index_elements=["dedupe_key"])
        result = await conn.execute(statement.returning(a.c.id, a.c.user_id))
        inserted.extend((row[0], row[1]) for row in result)
    return sorted(inserted)
