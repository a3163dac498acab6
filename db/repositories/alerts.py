"""Alerts: the record, and (issue 14) saved searches, watches and set-based matching."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder, build_page
from db.records import Page
from db.repositories import jobs, webhooks
from db.repositories.accounts import owner_scope
from db.tables import UtcDateTime


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    user_id: int
    kind: str  # SALE_MATCHED | PROPERTY_SOLD | ESTIMATE_CHANGED | DIGEST
    created_at: datetime
    read_at: datetime | None
    saved_search_id: int | None
    watch_id: int | None
    property_id: int | None
    sale_id: int | None
    data: str | None  # JSON text: a digest's matches, an estimate's change


ALERT_COLUMNS = (
    "id, user_id, kind, created_at, read_at, saved_search_id, watch_id, property_id, sale_id, data"
)
"""The columns `alert_from_row` reads, in its order (for hand-written SELECTs)."""


def alert_from_row(row: Any) -> AlertRecord:
    """From a row of the `alerts` table (a mapping or a tuple in ALERT_COLUMNS order)."""
    if hasattr(row, "_mapping"):
        row = row._mapping
    if hasattr(row, "keys"):
        return AlertRecord(
            row["id"],
            row["user_id"],
            row["kind"],
            row["created_at"],
            row["read_at"],
            row["saved_search_id"],
            row["watch_id"],
            row["property_id"],
            row["sale_id"],
            row["data"],
        )
    return AlertRecord(*row)


# -- saved searches --------------------------------------------------------------------------

ss = tables.saved_searches
w = tables.watches
a = tables.alerts


class LimitReached(ValueError):
    """The user already has as many saved searches (or watches) as allowed."""


@dataclass(frozen=True, slots=True)
class SearchColumns:
    """A validated filter as the columns matching reads (names upper case), and its anchor:
    the most selective place it names ('L:<LOCALITY>', 'P:<postcode>', 'D:<DISTRICT>', or
    'B' when a bounding box is its only place)."""

    anchor: str
    locality_name: str | None = None
    postcode: str | None = None
    district: str | None = None
    is_strata: bool | None = None
    nature: str | None = None
    min_area_m2: float | None = None
    max_area_m2: float | None = None
    min_price: int | None = None
    max_price: int | None = None
    sold_after: date | None = None
    sold_before: date | None = None
    min_lat: float | None = None
    min_lon: float | None = None
    max_lat: float | None = None
    max_lon: float | None = None


@dataclass(frozen=True, slots=True)
class SavedSearchRecord:
    id: int
    user_id: int
    name: str
    frequency: str  # INSTANT | DAILY | WEEKLY
    filter: str  # JSON: the filter as the user gave it
    created_at: datetime
    updated_at: datetime
    last_matched_at: datetime | None


SAVED_SEARCH_COLUMNS = (
    ss.c.id,
    ss.c.user_id,
    ss.c.name,
    ss.c.frequency,
    ss.c.filter,
    ss.c.created_at,
    ss.c.updated_at,
    ss.c.last_matched_at,
)


def _saved_search(row: Any) -> SavedSearchRecord:
    return SavedSearchRecord(*row)


async def _lock_user(conn: AsyncConnection, user_id: int) -> None:
    """Serialises one user's creations, so two at once cannot both pass the limit (the
    user's own row: visible to the owner role, and nobody else's lock)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.select(tables.users.c.id).where(tables.users.c.id == user_id).with_for_update()
        )


async def _count(conn: AsyncConnection, table: sa.Table, user_id: int) -> int:
    counted = await conn.execute(
        sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user_id)
    )
    return int(counted.scalar_one())


async def create_saved_search(
    db: Database,
    user_id: int,
    *,
    name: str,
    frequency: str,
    filter_json: str,
    columns: SearchColumns,
    limit: int,
) -> SavedSearchRecord:
    now = datetime.now(UTC)
    async with owner_scope(db, user_id) as conn:
        await _lock_user(conn, user_id)
        if await _count(conn, ss, user_id) >= limit:
            raise LimitReached(limit)
        row = (
            await conn.execute(
                sa.insert(ss)
                .values(
                    user_id=user_id,
                    name=name,
                    frequency=frequency,
                    filter=filter_json,
                    created_at=now,
                    updated_at=now,
                    **asdict(columns),
                )
                .returning(*SAVED_SEARCH_COLUMNS)
            )
        ).one()
    return _saved_search(row)


async def update_saved_search(
    db: Database,
    user_id: int,
    search_id: int,
    *,
    name: str | None = None,
    frequency: str | None = None,
    filter_json: str | None = None,
    columns: SearchColumns | None = None,
) -> SavedSearchRecord | None:
    """None when the user has no such search."""
    values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if name is not None:
        values["name"] = name
    if frequency is not None:
        values["frequency"] = frequency
    if filter_json is not None and columns is not None:
        values["filter"] = filter_json
        values.update(asdict(columns))
    async with owner_scope(db, user_id) as conn:
        row = (
            await conn.execute(
                sa.update(ss)
                .where(ss.c.id == search_id, ss.c.user_id == user_id)
                .values(**values)
                .returning(*SAVED_SEARCH_COLUMNS)
            )
        ).first()
    return None if row is None else _saved_search(row)


async def delete_saved_search(db: Database, user_id: int, search_id: int) -> bool:
    async with owner_scope(db, user_id) as conn:
        result = await conn.execute(
            sa.delete(ss).where(ss.c.id == search_id, ss.c.user_id == user_id)
        )
    return result.rowcount == 1


async def saved_searches(db: Database, user_id: int) -> list[SavedSearchRecord]:
    """The user's saved searches, oldest first."""
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(
            sa.select(*SAVED_SEARCH_COLUMNS).where(ss.c.user_id == user_id).order_by(ss.c.id)
        )
        return [_saved_search(row) for row in rows]


async def saved_searches_by_id(
    db: Database, user_id: int, search_ids: Sequence[int]
) -> dict[int, SavedSearchRecord]:
    """The user's searches among `search_ids` (one statement; others' ids are absent)."""
    if not search_ids:
        return {}
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(
            sa.select(*SAVED_SEARCH_COLUMNS).where(
                ss.c.user_id == user_id, ss.c.id.in_(sorted(set(search_ids)))
            )
        )
        return {row[0]: _saved_search(row) for row in rows}


# -- watches ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchRecord:
    id: int
    user_id: int
    property_id: int
    estimate_change_pct: float
    created_at: datetime


WATCH_COLUMNS = (w.c.id, w.c.user_id, w.c.property_id, w.c.estimate_change_pct, w.c.created_at)


def _watch(row: Any) -> WatchRecord:
    return WatchRecord(*row)


async def watch(
    db: Database, user_id: int, property_id: int, *, change_pct: float, limit: int
) -> WatchRecord:
    """Watches the property, or (already watched) sets its threshold: idempotent. The caller
    has checked that the property exists."""
    async with owner_scope(db, user_id) as conn:
        await _lock_user(conn, user_id)
        updated = (
            await conn.execute(
                sa.update(w)
                .where(w.c.user_id == user_id, w.c.property_id == property_id)
                .values(estimate_change_pct=change_pct)
                .returning(*WATCH_COLUMNS)
            )
        ).first()
        if updated is not None:
            return _watch(updated)
        if await _count(conn, w, user_id) >= limit:
            raise LimitReached(limit)
        row = (
            await conn.execute(
                sa.insert(w)
                .values(
                    user_id=user_id,
                    property_id=property_id,
                    estimate_change_pct=change_pct,
                    created_at=datetime.now(UTC),
                )
                .returning(*WATCH_COLUMNS)
            )
        ).one()
        # Its first estimate (the baseline later changes are measured from), soon.
        await jobs.enqueue(conn, "estimates.check", {"property_ids": [property_id]})
    return _watch(row)


async def unwatch(db: Database, user_id: int, property_id: int) -> bool:
    async with owner_scope(db, user_id) as conn:
        result = await conn.execute(
            sa.delete(w).where(w.c.user_id == user_id, w.c.property_id == property_id)
        )
    return result.rowcount == 1


async def watches(db: Database, user_id: int) -> list[WatchRecord]:
    """The user's watches, oldest first."""
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(
            sa.select(*WATCH_COLUMNS).where(w.c.user_id == user_id).order_by(w.c.id)
        )
        return [_watch(row) for row in rows]


async def watched_among(db: Database, user_id: int, property_ids: Sequence[int]) -> set[int]:
    """Which of these properties the user watches (one statement)."""
    if not property_ids:
        return set()
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(
            sa.select(w.c.property_id).where(
                w.c.user_id == user_id, w.c.property_id.in_(sorted(set(property_ids)))
            )
        )
        return {row[0] for row in rows}


# -- alerts ----------------------------------------------------------------------------------

NEWEST_FIRST: KeysetOrder[AlertRecord] = KeysetOrder(
    "ALERTS_NEWEST", [a.c.id], ["id"], [int], descending=True
)
"""Alerts newest first: ids grow with time (ix_alerts_user_id, ix_alerts_user_unread)."""

_ALERT_SELECT = (
    a.c.id,
    a.c.user_id,
    a.c.kind,
    a.c.created_at,
    a.c.read_at,
    a.c.saved_search_id,
    a.c.watch_id,
    a.c.property_id,
    a.c.sale_id,
    a.c.data,
)


async def alerts_page(
    db: Database,
    user_id: int,
    *,
    first: int,
    after: Sequence[Any] | None,
    unread_only: bool,
) -> Page[AlertRecord]:
    """One keyset page of the user's alerts, newest first."""
    where: list[sa.ColumnElement[bool]] = [a.c.user_id == user_id]
    if unread_only:
        where.append(a.c.read_at.is_(None))
    if after is not None:
        where.append(NEWEST_FIRST.after(after))
    async with owner_scope(db, user_id) as conn:
        rows = await conn.execute(
            sa.select(*_ALERT_SELECT)
            .where(*where)
            .order_by(*NEWEST_FIRST.order_by())
            .limit(first + 1)
        )
        records = [alert_from_row(tuple(row)) for row in rows]
    cursor = None if after is None else "after"
    return build_page(records, first=first, order=NEWEST_FIRST, after=cursor)


class AlertsNotFound(LookupError):
    def __init__(self, missing: Sequence[int]) -> None:
        super().__init__(missing)
        self.missing = list(missing)


async def mark_read(db: Database, user_id: int, alert_ids: Sequence[int] | None) -> int:
    """Marks these alerts (None: all) read; returns how many were unread. An id that is not
    one of the user's alerts refuses the whole call (AlertsNotFound), changing nothing."""
    where: list[sa.ColumnElement[bool]] = [a.c.user_id == user_id, a.c.read_at.is_(None)]
    async with owner_scope(db, user_id) as conn:
        if alert_ids is not None:
            wanted = sorted(set(alert_ids))
            if not wanted:
                return 0
            owned = {
                row[0]
                for row in await conn.execute(
                    sa.select(a.c.id).where(a.c.user_id == user_id, a.c.id.in_(wanted))
                )
            }
            missing = [i for i in wanted if i not in owned]
            if missing:
                raise AlertsNotFound(missing)
            where.append(a.c.id.in_(wanted))
        result = await conn.execute(sa.update(a).where(*where).values(read_at=datetime.now(UTC)))
    return max(result.rowcount, 0)


# -- matching (set-based, one transaction, PostgreSQL and SQLite) ----------------------------


@dataclass(frozen=True, slots=True)
class MatchResult:
    alert_ids: list[int]
    """New alerts (SALE_MATCHED and PROPERTY_SOLD), ascending."""
    user_ids: list[int]
    """Whose alerts they are (distinct, ascending): the users to wake."""
    sold_property_ids: list[int]
    """Watched properties that sold (distinct, ascending): their estimates are checked."""
    sale_matched: int = 0
    digest_matches: int = 0
    property_sold: int = 0
    deliveries: int = 0


NO_MATCH = MatchResult([], [], [])

_NOW = sa.bindparam("now", type_=UtcDateTime())
_CHUNK = 5000  # SQLite allows 32,766 bound variables per statement

# The sales of the range with what a filter compares: the property's place (its locality's
# name and postcode, its district, names upper case as the searches store them) and facts,
# the sale's own price and contract date. Each search is compared only with the sales of its
# anchor (ix_saved_searches_anchor), then on the columns it sets (NULL = any).
_SALES = """
    s AS (
        SELECT sa.id AS sale_id, sa.property_id, sa.price, sa.contract_date,
            upper(l.name) AS locality_name, l.postcode, upper(p.district) AS district,
            p.is_strata, p.nature, p.area_m2, p.latitude, p.longitude
        FROM sales sa
        JOIN properties p ON p.id = sa.property_id
        JOIN localities l ON l.id = p.locality_id
        WHERE sa.id >= :first AND sa.id <= :last AND p.deleted_at IS NULL
    )"""
_FILTER = """
    (ss.locality_name IS NULL OR ss.locality_name = s.locality_name)
    AND (ss.postcode IS NULL OR ss.postcode = s.postcode)
    AND (ss.district IS NULL OR ss.district = s.district)
    AND (ss.is_strata IS NULL OR ss.is_strata = s.is_strata)
    AND (ss.nature IS NULL OR ss.nature = s.nature)
    AND (ss.min_area_m2 IS NULL OR s.area_m2 >= ss.min_area_m2)
    AND (ss.max_area_m2 IS NULL OR s.area_m2 <= ss.max_area_m2)
    AND (ss.min_price IS NULL OR s.price >= ss.min_price)
    AND (ss.max_price IS NULL OR s.price <= ss.max_price)
    AND (ss.sold_after IS NULL OR s.contract_date >= ss.sold_after)
    AND (ss.sold_before IS NULL OR s.contract_date <= ss.sold_before)
    AND (ss.min_lat IS NULL OR (s.latitude >= ss.min_lat AND s.latitude <= ss.max_lat
        AND s.longitude >= ss.min_lon AND s.longitude <= ss.max_lon))"""
_PICK = "ss.id, ss.user_id, ss.frequency, s.sale_id, s.property_id"

# One branch per anchor kind; a search has one anchor and a sale one value of each, so no
# pair comes out twice. Bounding-box-only searches ('B') are compared with the distinct
# coordinates of the range, not with each sale: a property's coordinates are its locality's
# centroid, so a weekly file's 4,000 sales sit on about 1,400 points. MATERIALIZED (both
# dialects) keeps the planner from inlining `boxed` and comparing every sale instead.
_FIND_MATCHES = f"""
    WITH {_SALES},
    points AS MATERIALIZED (
        SELECT DISTINCT latitude, longitude FROM s WHERE latitude IS NOT NULL
    ),
    boxed AS MATERIALIZED (
        SELECT ss.id AS search_id, pt.latitude, pt.longitude
        FROM points pt
        JOIN saved_searches ss ON ss.anchor = 'B'
            AND pt.latitude >= ss.min_lat AND pt.latitude <= ss.max_lat
            AND pt.longitude >= ss.min_lon AND pt.longitude <= ss.max_lon
    )
    INSERT INTO alert_matches (search_id, user_id, frequency, sale_id, property_id)
    SELECT {_PICK} FROM s JOIN saved_searches ss ON ss.anchor = 'L:' || s.locality_name
    WHERE {_FILTER}
    UNION ALL
    SELECT {_PICK} FROM s JOIN saved_searches ss ON ss.anchor = 'P:' || s.postcode
    WHERE {_FILTER}
    UNION ALL
    SELECT {_PICK} FROM s JOIN saved_searches ss ON ss.anchor = 'D:' || s.district
    WHERE {_FILTER}
    UNION ALL
    SELECT {_PICK} FROM boxed b
    JOIN s ON s.latitude = b.latitude AND s.longitude = b.longitude
    JOIN saved_searches ss ON ss.id = b.search_id
    WHERE {_FILTER}
"""

_TEMPORARY = {
    "postgresql": (
        "CREATE TEMPORARY TABLE IF NOT EXISTS alert_matches (search_id bigint, "
        "user_id bigint, frequency text, sale_id bigint, property_id bigint)",
        "TRUNCATE alert_matches",  # temporary tables are never vacuumed: no dead rows
    ),
    "sqlite": (
        "CREATE TEMPORARY TABLE IF NOT EXISTS alert_matches (search_id INTEGER, "
        "user_id INTEGER, frequency TEXT, sale_id INTEGER, property_id INTEGER)",
        "DELETE FROM alert_matches",
    ),
}

# Every INSERT ... SELECT below has a WHERE clause: SQLite needs one before ON CONFLICT.
_INSERT_SALE_MATCHED = sa.text(
    """
    INSERT INTO alerts (user_id, kind, created_at, saved_search_id, property_id, sale_id,
        dedupe_key)
    SELECT m.user_id, 'SALE_MATCHED', :now, m.search_id, m.property_id, m.sale_id,
        'S:' || m.search_id || ':' || m.sale_id
    FROM alert_matches m
    WHERE m.frequency = 'INSTANT'
    ORDER BY m.sale_id, m.search_id
    ON CONFLICT DO NOTHING
    RETURNING id, user_id, saved_search_id
    """
).bindparams(_NOW)

_INSERT_DIGEST_MATCHES = sa.text(
    """
    INSERT INTO saved_search_matches (saved_search_id, sale_id, user_id, matched_at)
    SELECT m.search_id, m.sale_id, m.user_id, :now
    FROM alert_matches m
    WHERE m.frequency <> 'INSTANT'
    ON CONFLICT DO NOTHING
    RETURNING saved_search_id
    """
).bindparams(_NOW)

_INSERT_PROPERTY_SOLD = sa.text(
    """
    INSERT INTO alerts (user_id, kind, created_at, watch_id, property_id, sale_id, dedupe_key)
    SELECT w.user_id, 'PROPERTY_SOLD', :now, w.id, w.property_id, sa.id,
        'W:' || w.id || ':' || sa.id
    FROM sales sa
    JOIN watches w ON w.property_id = sa.property_id
    WHERE sa.id >= :first AND sa.id <= :last
    ORDER BY sa.id, w.id
    ON CONFLICT DO NOTHING
    RETURNING id, user_id, property_id
    """
).bindparams(_NOW)

_TOUCH_SEARCHES = sa.text(
    "UPDATE saved_searches SET last_matched_at = :now WHERE id IN :ids"
).bindparams(_NOW, sa.bindparam("ids", expanding=True))

_ANYONE_LISTENING = sa.select(sa.or_(sa.exists().select_from(ss), sa.exists().select_from(w)))


async def anyone_listening(conn: AsyncConnection) -> bool:
    """Whether any saved search or watch exists (one cheap statement): without one, a load
    has nothing to match."""
    return bool((await conn.execute(_ANYONE_LISTENING)).scalar())


def _batch_key(first_sale_id: int, last_sale_id: int) -> str:
    return f"sales.recorded:{first_sale_id}:{last_sale_id}"


async def queue_new_sales(conn: AsyncConnection, first_sale_id: int, last_sale_id: int) -> None:
    """A load batch's outbox, in the batch's own transaction: a `sales.recorded` job for its
    new sales, so that their alerts are made even if the load dies before matching them."""
    await jobs.enqueue(
        conn,
        "sales.recorded",
        {"first_sale_id": first_sale_id, "last_sale_id": last_sale_id},
        dedupe_key=_batch_key(first_sale_id, last_sale_id),
    )


async def settle_new_sales(conn: AsyncConnection, first_sale_id: int, last_sale_id: int) -> None:
    """The load matched the batch itself (in `conn`'s transaction): its queued job is not
    needed (a worker that took it already only matches again, which adds nothing)."""
    await jobs.cancel_queued(conn, _batch_key(first_sale_id, last_sale_id))


async def match_sales(conn: AsyncConnection, first_sale_id: int, last_sale_id: int) -> MatchResult:
    """Alerts for the sales with ids in [first_sale_id, last_sale_id], in the caller's
    transaction: SALE_MATCHED for INSTANT searches, saved_search_matches rows for DAILY and
    WEEKLY ones (their digests), PROPERTY_SOLD for watches of the sold properties; then the
    alerts' webhook deliveries and an `estimates.check` job for the watched properties that
    sold. Idempotent: what was matched before is not added again (dedupe keys), so a range
    may be matched twice (a retried job, a load matched after a recordSale).

    Every recorded sale is matched, market or not: a transfer at a nominal price of a watched
    property is still news to its watcher, and a search that wants market prices says so with
    its price bounds."""
    if last_sale_id < first_sale_id or not await anyone_listening(conn):
        return NO_MATCH
    now = datetime.now(UTC)
    bounds = {"first": first_sale_id, "last": last_sale_id}
    create, clear = _TEMPORARY["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    await conn.execute(sa.text(create))
    await conn.execute(sa.text(clear))
    await conn.execute(sa.text(_FIND_MATCHES), bounds)
    matched = (await conn.execute(_INSERT_SALE_MATCHED, {"now": now})).all()
    gathered = (await conn.execute(_INSERT_DIGEST_MATCHES, {"now": now})).all()
    sold = (await conn.execute(_INSERT_PROPERTY_SOLD, {"now": now, **bounds})).all()
    await conn.execute(sa.text(clear))
    searches = sorted({row[2] for row in matched} | {row[0] for row in gathered})
    for start in range(0, len(searches), _CHUNK):
        await conn.execute(_TOUCH_SEARCHES, {"now": now, "ids": searches[start : start + _CHUNK]})
    alert_ids = sorted(row[0] for row in (*matched, *sold))
    sold_property_ids = sorted({row[2] for row in sold})
    deliveries = await webhooks.create_deliveries(conn, alert_ids) if alert_ids else 0
    if sold_property_ids:
        await jobs.enqueue(conn, "estimates.check", {"property_ids": sold_property_ids})
    return MatchResult(
        alert_ids=alert_ids,
        user_ids=sorted({row[1] for row in (*matched, *sold)}),
        sold_property_ids=sold_property_ids,
        sale_matched=len(matched),
        digest_matches=len(gathered),
        property_sold=len(sold),
        deliveries=deliveries,
    )


async def last_sale_id(conn: AsyncConnection) -> int:
    """The highest sale id so far (0 with none): a load matches the sales above it."""
    return int(
        (
            await conn.execute(sa.select(sa.func.coalesce(sa.func.max(tables.sales.c.id), 0)))
        ).scalar_one()
    )


# -- digests ---------------------------------------------------------------------------------

DIGEST_SALE_LIMIT = 50
"""A digest lists the ids of at most this many of its matched sales (matchCount counts all)."""

_INSERT_DIGESTS = sa.text(
    """
    INSERT INTO alerts (user_id, kind, created_at, saved_search_id, dedupe_key)
    SELECT ss.user_id, 'DIGEST', :now, ss.id, 'D:' || ss.id || ':' || :period
    FROM saved_searches ss
    WHERE ss.frequency = :frequency AND EXISTS (
        SELECT 1 FROM saved_search_matches m
        WHERE m.saved_search_id = ss.id AND m.matched_at >= :start AND m.matched_at < :end)
    ORDER BY ss.id
    ON CONFLICT DO NOTHING
    RETURNING id, user_id, saved_search_id
    """
).bindparams(
    _NOW,
    sa.bindparam("start", type_=UtcDateTime()),
    sa.bindparam("end", type_=UtcDateTime()),
)

_DIGEST_SALES = sa.text(
    """
    SELECT saved_search_id, sale_id FROM saved_search_matches
    WHERE saved_search_id IN :ids AND matched_at >= :start AND matched_at < :end
    ORDER BY saved_search_id, sale_id
    """
).bindparams(
    sa.bindparam("ids", expanding=True),
    sa.bindparam("start", type_=UtcDateTime()),
    sa.bindparam("end", type_=UtcDateTime()),
)

_SET_DATA = sa.text("UPDATE alerts SET data = :data WHERE id = :id")

_PURGE_MATCHES = sa.text("DELETE FROM saved_search_matches WHERE matched_at < :before").bindparams(
    sa.bindparam("before", type_=UtcDateTime())
)


@dataclass(frozen=True, slots=True)
class DigestResult:
    alert_ids: list[int]
    user_ids: list[int]
    deliveries: int = 0


async def make_digests(
    conn: AsyncConnection, *, frequency: str, period: str, start: datetime, end: datetime
) -> DigestResult:
    """One DIGEST alert per `frequency` search with matches gathered in [start, end), data
    {"period", "matchCount", "saleIds": the first DIGEST_SALE_LIMIT in the order they were
    recorded}, and their webhook deliveries, in the caller's transaction. Idempotent per
    (search, period)."""
    now = datetime.now(UTC)
    window = {"start": start, "end": end}
    made = (
        await conn.execute(
            _INSERT_DIGESTS, {"now": now, "period": period, "frequency": frequency, **window}
        )
    ).all()
    if not made:
        return DigestResult([], [])
    sales_of: dict[int, list[int]] = {row[2]: [] for row in made}
    searches = sorted(sales_of)
    for first in range(0, len(searches), _CHUNK):
        chunk = searches[first : first + _CHUNK]
        for search_id, sale_id in await conn.execute(_DIGEST_SALES, {"ids": chunk, **window}):
            sales_of[search_id].append(sale_id)
    await conn.execute(
        _SET_DATA,
        [
            {
                "id": alert_id,
                "data": json.dumps(
                    {
                        "period": period,
                        "matchCount": len(sales_of[search_id]),
                        "saleIds": sales_of[search_id][:DIGEST_SALE_LIMIT],
                    }
                ),
            }
            for alert_id, _user_id, search_id in made
        ],
    )
    alert_ids = sorted(row[0] for row in made)
    deliveries = await webhooks.create_deliveries(conn, alert_ids)
    return DigestResult(alert_ids, sorted({row[1] for row in made}), deliveries)


async def purge_matches(conn: AsyncConnection, before: datetime) -> int:
    """Drops gathered matches older than `before` (their digests are made)."""
    result = await conn.execute(_PURGE_MATCHES, {"before": before})
    return max(result.rowcount, 0)
