"""What live subscriptions read: a user's alerts past an id, and which users have new ones.

A subscription never trusts a message for content: it is woken (app/streams/broker.py), then
reads the alerts table, the truth. A single user's reads run in `owner_scope` (row-level
security on PostgreSQL) and name the user in their WHERE clause too (the only guard on
SQLite). `alerts_after_many` is the exception, for speed: one wake-up can concern a thousand
subscriptions of one process, and a thousand owner-scoped transactions take over a second
where one statement takes milliseconds; so it runs as the service, every row is selected by
its (user, after) key in the statement, and the caller checks each row's user again before
handing it to that user's subscription. The watermark query (`users_with_alerts_after`) runs
as the service too: it returns user ids only, so a process can wake its subscribers when
pub/sub is unavailable.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.repositories.accounts import owner_scope
from db.repositories.alerts import ALERT_COLUMNS, AlertRecord, alert_from_row

_ALERTS = tables.alerts

_COLUMNS = [_ALERTS.c[name] for name in ALERT_COLUMNS.split(", ")]
"""Typed columns (timestamps come back as datetimes on SQLite too), in alert_from_row's order."""
_LATEST = sa.select(sa.func.coalesce(sa.func.max(_ALERTS.c.id), 0)).where(
    _ALERTS.c.user_id == sa.bindparam("user_id")
)
_AFTER = (
    sa.select(*_COLUMNS)
    .where(_ALERTS.c.user_id == sa.bindparam("user_id"), _ALERTS.c.id > sa.bindparam("after_id"))
    .order_by(_ALERTS.c.id)
    .limit(sa.bindparam("limit"))
)
# One statement for many (user, after) keys: each key's page by the (user_id, id) index.
_AFTER_MANY_PG = sa.text(
    "SELECT k.n, "
    + ", ".join(f"a.{name}" for name in ALERT_COLUMNS.split(", "))
    + " FROM unnest(CAST(:users AS bigint[]), CAST(:afters AS bigint[])) "
    "WITH ORDINALITY AS k(user_id, after_id, n) "
    f"CROSS JOIN LATERAL (SELECT {ALERT_COLUMNS} FROM alerts "
    "WHERE alerts.user_id = k.user_id AND alerts.id > k.after_id "
    "ORDER BY alerts.id LIMIT :limit) AS a ORDER BY k.n, a.id"
)
_WATERMARK = sa.text("SELECT COALESCE(MAX(id), 0) FROM alerts")
_USERS_AFTER = (
    sa.select(_ALERTS.c.user_id, sa.func.max(_ALERTS.c.id))
    .where(_ALERTS.c.id > sa.bindparam("after_id"))
    .group_by(_ALERTS.c.user_id)
)


async def latest_alert_id(db: Database, user_id: int) -> int:
    """The id of the user's newest alert, 0 when they have none (index (user_id, id))."""
    async with owner_scope(db, user_id) as conn:
        return int((await conn.execute(_LATEST, {"user_id": user_id})).scalar_one())


async def alerts_after(
    db: Database, user_id: int, after_id: int, limit: int = 100
) -> list[AlertRecord]:
    """The user's alerts with an id above `after_id`, oldest first, at most `limit`."""
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(
            _AFTER, {"user_id": user_id, "after_id": after_id, "limit": limit}
        )
        return [alert_from_row(row) for row in rows]


async def alerts_after_many(
    db: Database, keys: Sequence[tuple[int, int]], limit: int = 100
) -> list[list[AlertRecord]]:
    """For each (user_id, after_id) key, in order: that user's alerts above after_id, oldest
    first, at most `limit`. One statement (per dialect its own)."""
    if not keys:
        return []
    pages: list[list[AlertRecord]] = [[] for _ in keys]
    if db.is_postgresql:
        rows = await db.fetch_all(
            _AFTER_MANY_PG,
            {"users": [k[0] for k in keys], "afters": [k[1] for k in keys], "limit": limit},
            prepared=True,
        )
        for row in rows:
            pages[int(row[0]) - 1].append(alert_from_row(tuple(row)[1:]))
        return pages
    async with db.connect() as conn:
        for row in await conn.execute(_after_many_sqlite(keys, limit)):
            pages[int(row[0]) - 1].append(alert_from_row(tuple(row)[1:]))
    return pages


def _after_many_sqlite(keys: Sequence[tuple[int, int]], limit: int) -> sa.TextualSelect:
    """The keys as a VALUES list joined to their users' alerts (index (user_id, id)), each
    key's first `limit` by a window (SQLite has no LATERAL, nor aliases on VALUES: a CTE)."""
    values = ", ".join(f"(:n{i}, :u{i}, :a{i})" for i in range(len(keys)))
    params: dict[str, int] = {"limit": limit}
    for i, (user_id, after_id) in enumerate(keys):
        params.update({f"n{i}": i + 1, f"u{i}": user_id, f"a{i}": after_id})
    columns = ", ".join(f"a.{name}" for name in ALERT_COLUMNS.split(", "))
    statement = sa.text(
        f"WITH k(n, user_id, after_id) AS (VALUES {values}) "
        f"SELECT n, {ALERT_COLUMNS} FROM (SELECT k.n AS n, {columns}, "
        "row_number() OVER (PARTITION BY k.n ORDER BY a.id) AS rank "
        "FROM k JOIN alerts AS a ON a.user_id = k.user_id AND a.id > k.after_id) "
        "WHERE rank <= :limit ORDER BY n, id"
    ).bindparams(**params)
    # Typed result columns: timestamps come back as aware datetimes.
    return statement.columns(sa.column("n", sa.Integer), *_COLUMNS)


async def alert_watermark(db: Database) -> int:
    """The newest alert id of any user, 0 when there is none."""
    return int((await db.fetch_all(_WATERMARK, prepared=True))[0][0])


async def users_with_alerts_after(db: Database, after_id: int) -> tuple[list[int], int]:
    """(the users with an alert above `after_id`, the newest such id or `after_id`): one
    statement, the primary key's range. Ids only, never an alert's content."""
    rows = await db.fetch_all(_USERS_AFTER, {"after_id": after_id}, prepared=True)
    newest = max((int(row[1]) for row in rows), default=after_id)
    return [int(row[0]) for row in rows], max(newest, after_id)
