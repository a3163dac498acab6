"""Bulk load of PSI sales: read -> validate -> stage (COPY on PostgreSQL) -> set-based merge.

Idempotent at two levels: a file already loaded (same sha256) is skipped unless forced, and
every merge statement is keyed on natural keys ((vg property id, strata lot) for properties,
(property, dealing number) for sales), so re-reading a file adds nothing twice.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db import tables
from db.engine import Database, raw_asyncpg_connection
from db.ingest import merge_sql
from db.ingest.readers import (
    Gazetteer,
    Progress,
    SourceError,
    SourceRow,
    read_sales,
)
from db.ingest.records import STAGE_COLUMNS, RowError, build_sale

LocalityKey = tuple[str, str]


@dataclass
class LoadSummary:
    files_loaded: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    sales_inserted: int = 0
    sales_restated: int = 0
    duplicates_skipped: int = 0
    localities_created: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        out = [
            f"files loaded {self.files_loaded}, skipped as already loaded {self.files_skipped}",
            f"rows read {self.rows_read:,} in {self.seconds:.1f}s ({self.rows_per_second:,.0f}/s)",
            f"sales inserted {self.sales_inserted:,}, restated (newer extract) "
            f"{self.sales_restated:,}, already present {self.duplicates_skipped:,}",
            f"localities created {self.localities_created:,}",
            f"rows rejected {self.rows_rejected:,}",
        ]
        out += [f"  {count:,} x {reason}" for reason, count in self.rejected.most_common()]
        return out


RejectHandler = Callable[[SourceError], None]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(rows: Iterable[SourceRow | SourceError], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _sqlite_value(value: Any) -> Any:
    # The text layout SQLAlchemy's SQLite types read back, so raw-staged rows and ORM rows agree.
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


class SalesLoader:
    def __init__(
        self,
        db: Database,
        *,
        gazetteer: Gazetteer,
        districts: dict[str, str],
        localities: frozenset[str] | None = None,
        chunk_size: int = 50_000,
        on_reject: RejectHandler | None = None,
    ) -> None:
        self.db = db
        self.gazetteer = gazetteer
        self.districts = districts
        self.only_localities = localities
        self.chunk_size = chunk_size
        self.on_reject = on_reject
        self._locality_ids: dict[LocalityKey, tuple[int, float | None, float | None]] = {}

    async def load(
        self, paths: Sequence[Path], *, force: bool = False, progress: Progress | None = None
    ) -> LoadSummary:
        summary = LoadSummary()
        started = time.perf_counter()
        async with self.db.begin() as conn:
            await self._read_localities(conn)
        for path in paths:
            await self._load_file(path, summary, force=force, progress=progress)
        async with self.db.begin() as conn:
            # Fresh planner statistics after a bulk load; keyset plans depend on them.
            await conn.execute(sa.text("ANALYZE" if self.db.is_postgresql else "PRAGMA optimize"))
        summary.seconds = time.perf_counter() - started
        return summary

    async def _read_localities(self, conn: AsyncConnection) -> None:
        t = tables.localities
        rows = await conn.execute(
            sa.select(t.c.id, t.c.name, t.c.postcode, t.c.latitude, t.c.longitude)
        )
        self._locality_ids = {(r.name, r.postcode): (r.id, r.latitude, r.longitude) for r in rows}

    async def _load_file(
        self, path: Path, summary: LoadSummary, *, force: bool, progress: Progress | None
    ) -> None:
        sha256 = _file_sha256(path)
        if not force and await self._already_loaded(sha256):
            summary.files_skipped += 1
            if progress is not None:
                progress(path.stat().st_size)
            return
        rows_read = inserted = 0
        reader = read_sales(path, localities=self.only_localities, progress=progress)
        for chunk in _chunks(reader, self.chunk_size):
            staged = await self._stage_rows(chunk, summary)
            rows_read += len(chunk)
            if staged:
                inserted += await self._merge(staged, summary)
        summary.rows_read += rows_read
        summary.files_loaded += 1
        await self._record_file(path, sha256, rows_read, inserted)

    async def _already_loaded(self, sha256: str) -> bool:
        t = tables.ingested_files
        row = await self.db.fetch_one(sa.select(t.c.id).where(t.c.sha256 == sha256))
        return row is not None

    async def _record_file(self, path: Path, sha256: str, rows_read: int, inserted: int) -> None:
        values = {
            "name": path.name,
            "sha256": sha256,
            "rows_read": rows_read,
            "sales_inserted": inserted,
        }
        insert = postgresql.insert if self.db.is_postgresql else sqlite.insert
        statement = insert(tables.ingested_files).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["sha256"],
            set_={"rows_read": rows_read, "sales_inserted": inserted, "loaded_at": sa.func.now()},
        )
        async with self.db.begin() as conn:
            await conn.execute(statement)

    def _reject(self, summary: LoadSummary, error: SourceError) -> None:
        summary.rejected[f"{error.error.field}: {error.error.reason}"] += 1
        if self.on_reject is not None:
            self.on_reject(error)

    async def _stage_rows(
        self, chunk: list[SourceRow | SourceError], summary: LoadSummary
    ) -> list[tuple[Any, ...]]:
        good: list[tuple[SourceRow, LocalityKey]] = []
        for item in chunk:
            if isinstance(item, SourceError):
                self._reject(summary, item)
                continue
            name = item.raw.locality.strip().upper()
            postcode = item.raw.postcode.strip()
            if not name:
                self._reject(
                    summary, SourceError(item.source, item.line, RowError("locality", "missing"))
                )
                continue
            if len(name) > 64 or len(postcode) > 8:
                self._reject(
                    summary,
                    SourceError(
                        item.source, item.line, RowError("locality", "name or postcode too long")
                    ),
                )
                continue
            good.append((item, (name, postcode)))
        await self._create_localities({key for _, key in good}, summary)
        staged: list[tuple[Any, ...]] = []
        for item, key in good:
            locality_id, latitude, longitude = self._locality_ids[key]
            try:
                staged.append(
                    build_sale(
                        item.raw,
                        parcels_in_sale=item.parcels_in_sale,
                        locality_id=locality_id,
                        latitude=latitude,
                        longitude=longitude,
                        district=self.districts.get(item.raw.district_code),
                    )
                )
            except RowError as error:
                self._reject(summary, SourceError(item.source, item.line, error))
        return staged

    async def _create_localities(self, keys: set[LocalityKey], summary: LoadSummary) -> None:
        missing = sorted(keys - self._locality_ids.keys())
        if not missing:
            return
        values = []
        for name, postcode in missing:
            place = self.gazetteer.locate(name, postcode)
            values.append(
                {
                    "name": name,
                    "postcode": postcode,
                    "state": place.state if place else "NSW",
                    "latitude": place.latitude if place else None,
                    "longitude": place.longitude if place else None,
                }
            )
        insert = postgresql.insert if self.db.is_postgresql else sqlite.insert
        t = tables.localities
        async with self.db.begin() as conn:
            for start in range(0, len(values), 1000):
                batch = values[start : start + 1000]
                await conn.execute(insert(t).values(batch).on_conflict_do_nothing())
            summary.localities_created += len(values)
            await self._read_localities(conn)

    async def _merge(self, staged: list[tuple[Any, ...]], summary: LoadSummary) -> int:
        async with self.db.begin() as conn:
            await conn.execute(sa.text(merge_sql.CREATE_STAGE))
            await conn.execute(sa.text(merge_sql.CREATE_KEYED))
            for statement in merge_sql.CLEAR_STAGE:
                await conn.execute(sa.text(statement))
            await self._copy_into_stage(conn, staged)
            await conn.execute(sa.text(merge_sql.UPSERT_PROPERTIES))
            await conn.execute(sa.text(merge_sql.FILL_KEYED))
            restated = (await conn.execute(sa.text(merge_sql.RESTATE_SALES))).rowcount
            inserted = (await conn.execute(sa.text(merge_sql.INSERT_SALES))).rowcount
            await conn.execute(sa.text(merge_sql.REFRESH_LAST_SALE))
            await self._fill_locality_districts(conn)
        summary.sales_inserted += inserted
        summary.sales_restated += restated
        summary.duplicates_skipped += len(staged) - inserted - restated
        return inserted

    async def _copy_into_stage(self, conn: AsyncConnection, staged: list[tuple[Any, ...]]) -> None:
        if self.db.is_postgresql:
            driver = await raw_asyncpg_connection(conn)
            await driver.copy_records_to_table("stage_sales", records=staged, columns=STAGE_COLUMNS)
            return
        placeholders = ", ".join("?" for _ in STAGE_COLUMNS)
        raw = await conn.get_raw_connection()
        cursor = raw.driver_connection  # type: ignore[union-attr]
        await cursor.executemany(
            f"INSERT INTO stage_sales VALUES ({placeholders})",
            [tuple(_sqlite_value(v) for v in row) for row in staged],
        )

    async def _fill_locality_districts(self, conn: AsyncConnection) -> None:
        await conn.execute(sa.text(merge_sql.SET_LOCALITY_DISTRICTS))
