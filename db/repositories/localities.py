"""Locality queries: by id, by (name, postcode), name-ordered search pages and their count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from db import tables
from db.engine import Database
from db.keyset import KeysetOrder
from db.records import LOCALITY_COLUMNS, LocalityRecord
from db.repositories.batching import rows_by_id

l = tables.localities  # noqa: E741

LOCALITIES_BY_NAME: KeysetOrder[LocalityRecord] = KeysetOrder(
    "NAME", [l.c.name, l.c.postcode, l.c.id], ["name", "postcode", "id"], [str, str, int]
)


async def localities_by_id(db: Database, ids: Sequence[int]) -> dict[int, LocalityRecord]:
    rows = await rows_by_id(
        db, name="localities_by_id", columns=LOCALITY_COLUMNS, key=l.c.id, keys=ids
    )
    return {row[0]: LocalityRecord(*row) for row in rows}


async def localities_by_name(
    db: Database, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], LocalityRecord]:
    """Exact (UPPER name, postcode) matches; names are stored upper case."""
    statement = sa.select(*LOCALITY_COLUMNS).where(
        sa.tuple_(l.c.name, l.c.postcode).in_([(name.upper(), code) for name, code in keys])
    )
    records = [LocalityRecord(*row) for row in await db.fetch_all(statement)]
    return {(r.name, r.postcode): r for r in records}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search(search: str | None) -> list[sa.ColumnElement[bool]]:
    if not search:
        return []
    return [l.c.name.like(_escape_like(search.strip().upper()) + "%", escape="\\")]


async def localities_page(
    db: Database, *, search: str | None, after: Sequence[Any] | None, limit: int
) -> list[LocalityRecord]:
    """Localities in name order; `search` matches a name prefix, case-insensitively."""
    where = _search(search)
    if after is not None:
        where.append(LOCALITIES_BY_NAME.after(after))
    statement = (
        sa.select(*LOCALITY_COLUMNS)
        .where(*where)
        .order_by(*LOCALITIES_BY_NAME.order_by())
        .limit(limit)
    )
    return [LocalityRecord(*row) for row in await db.fetch_all(statement)]


async def count_localities(db: Database, *, search: str | None) -> int:
    """How many localities `localities(search:)` lists (exactly: a few thousand at most)."""
    statement = sa.select(sa.func.count()).select_from(l).where(*_search(search))
    rows = await db.fetch_all(statement)
    return int(rows[0][0])


async def busiest_localities(db: Database, limit: int) -> list[int]:
    """Ids of the localities with the most live properties (what clients ask for most)."""
    p = tables.properties
    statement = (
        sa.select(p.c.locality_id)
        .where(p.c.deleted_at.is_(None))
        .group_by(p.c.locality_id)
        .order_by(sa.func.count().desc(), p.c.locality_id)
        .limit(limit)
    )
    return [row[0] for row in await db.fetch_all(statement)]
