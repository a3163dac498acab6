"""Bulk load of PSI sales: read -> validate -> stage (COPY on PostgreSQL) -> set-based merge.

Idempotent at two levels: a file already loaded (same sha256) is skipped unless forced, and
every merge statement is keyed on natural keys ((vg property id, strata lot) for properties,
(property, dealing number) for sales), so re-reading a file adds nothing twice.

Speed: a PSI CSV's plain lines (nearly all) reach the database as text, COPY'd as read, and
the database validates and converts them (db/ingest/stage_sql.py); Python reads only the
other lines and the rows the database hands back, with the same code as before, so rejects
are reported as they always were. Splitting runs in a worker thread one chunk ahead (the GIL
is free while the event loop waits on the socket). Into an empty database the secondary
indexes are dropped for the load and built once at the end; into empty tables on PostgreSQL
the unique constraints too, and everything is merged at once with plain INSERTs.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db import tables
from db.engine import Database, raw_asyncpg_connection
from db.ingest import merge_sql, stage_sql
from db.ingest.csv_split import CsvChunk, read_csv_chunks
from db.ingest.readers import Gazetteer, Progress, SourceError, SourceRow, csv_item, read_sales
from db.ingest.records import LOCALITY_SLOT, STAGE_COLUMNS, RowError, build_sale

LocalityKey = tuple[str, str]
RejectHandler = Any  # Callable[[SourceError], None]; Any keeps it callable from the thread

# Secondary indexes rebuilt after a load into an empty database (unique ones stay: the merge's
# ON CONFLICT needs them).
BULK_INDEXED_TABLES = (tables.properties, tables.sales)


class LoadProgress(Protocol):
    """What a load reports while it runs (app/cli.py shows it as a bar or as log lines)."""

    def advance(self, n: int) -> object:
        """`n` more bytes of the files consumed (called from the reader's thread)."""

    def rows(self, n: int) -> object:
        """`n` more rows read and validated."""

    def file_done(self, path: Path, *, skipped: bool) -> object:
        """Every row of `path` is read (`skipped`: loaded before, by checksum)."""

    def phase(self, text: str) -> object:
        """A step that reads no file and may take a while: a merge, the index rebuild."""


class MatchedSales(Protocol):
    """What matching new sales made (db/repositories/alerts.py `MatchResult`)."""

    @property
    def alert_ids(self) -> Sequence[int]: ...

    @property
    def user_ids(self) -> Sequence[int]: ...


@dataclass(frozen=True, slots=True)
class NewSalesHook:
    """What a load does with a batch's new sales once it commits: alerts (the caller passes
    db/repositories/alerts.py's functions; ingest does not import the repositories, which
    import it). `listening(conn)`: one cheap statement, False when nobody has a saved search
    or a watch (then nothing else runs); `match(conn, first_id, last_id)`: set-based,
    idempotent, in the transaction it is given."""

    listening: Callable[[AsyncConnection], Awaitable[bool]]
    match: Callable[[AsyncConnection, int, int], Awaitable[MatchedSales]]
    queue: Callable[[AsyncConnection, int, int], Awaitable[None]]
    """The outbox: in the batch's transaction, a job that matches (first_id, last_id) should
    the load die before it does."""
    settle: Callable[[AsyncConnection, int, int], Awaitable[None]]
    """In the match's transaction: the queued job is no longer needed."""


_LAST_SALE_ID = sa.select(sa.func.coalesce(sa.func.max(tables.sales.c.id), 0))


@dataclass
class LoadSummary:
    files_loaded: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    sales_inserted: int = 0
    sales_restated: int = 0
    duplicates_skipped: int = 0
    localities_created: int = 0
    alerts_created: int = 0
    """SALE_MATCHED and PROPERTY_SOLD alerts for the new sales (digest matches aside)."""
    alert_user_ids: set[int] = field(default_factory=set)
    """Whose they are: the users whose subscriptions a caller may wake."""
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
        if self.alerts_created:
            out.insert(-1, f"alerts created {self.alerts_created:,}")
        out += [f"  {count:,} x {reason}" for reason, count in self.rejected.most_common()]
        return out


@dataclass
class PreparedChunk:
    """Validated staging tuples (locality slot holding the (name, postcode) key) and rejects."""

    rows: list[tuple[Any, ...]]
    rejects: list[SourceError]
    rows_read: int


def _file_digest(path: Path) -> tuple[str, int]:
    """(sha256, size in bytes)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _sqlite_value(value: Any) -> Any:
    # The text layout SQLAlchemy's SQLite types read back, so raw-staged rows and ORM rows agree.
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def validate(item: SourceRow, districts: dict[str, str]) -> tuple[Any, ...] | SourceError:
    """`item`'s staging tuple (its locality slot holding the (name, postcode) key), or why not."""
    name = item.raw.locality.strip().upper()
    postcode = item.raw.postcode.strip()
    try:
        if not name:
            raise RowError("locality", "missing")
        if len(name) > 64 or len(postcode) > 8:
            raise RowError("locality", "name or postcode too long")
        return build_sale(
            item.raw,
            parcels_in_sale=item.parcels_in_sale,
            locality=(name, postcode),
            district=districts.get(item.raw.district_code),
        )
    except RowError as error:
        return SourceError(item.source, item.line, error)


def prepare_chunks(
    path: Path,
    *,
    districts: dict[str, str],
    localities: frozenset[str] | None,
    chunk_size: int,
    progress: Progress | None,
) -> Iterator[PreparedChunk]:
    """Parse and validate `path` into chunks (pure Python, no database: runs in a thread)."""
    chunk = PreparedChunk([], [], 0)
    for item in read_sales(path, localities=localities, progress=progress):
        chunk.rows_read += 1
        checked = item if isinstance(item, SourceError) else validate(item, districts)
        if isinstance(checked, SourceError):
            chunk.rejects.append(checked)
        else:
            chunk.rows.append(checked)
        if chunk.rows_read >= chunk_size:
            yield chunk
            chunk = PreparedChunk([], [], 0)
    if chunk.rows_read:
        yield chunk


class SalesLoader:
    def __init__(
        self,
        db: Database,
        *,
        gazetteer: Gazetteer,
        districts: dict[str, str],
        localities: frozenset[str] | None = None,
        chunk_size: int = 50_000,
        csv_chunk_rows: int = 200_000,
        merge_rows: int = 500_000,
        bulk_merge_rows: int = 2_500_000,
        on_reject: RejectHandler | None = None,
        new_sales: NewSalesHook | None = None,
        validate_in_database: bool = True,
    ) -> None:
        """`validate_in_database`: PSI CSVs take the COPY path (db/ingest/csv_split.py,
        stage_sql.py); False reads them row by row in Python, as the raw VG files are
        (tests compare the two)."""
        self.db = db
        self.validate_in_database = validate_in_database
        self.new_sales = new_sales
        self.gazetteer = gazetteer
        self.districts = districts
        self.only_localities = localities
        self.chunk_size = chunk_size
        self.csv_chunk_rows = csv_chunk_rows
        self.merge_rows = merge_rows
        self.bulk_merge_rows = bulk_merge_rows
        self.on_reject = on_reject
        self.progress: LoadProgress | None = None
        self._locality_ids: dict[LocalityKey, int] = {}

    async def load(
        self, paths: Sequence[Path], *, force: bool = False, progress: LoadProgress | None = None
    ) -> LoadSummary:
        summary = LoadSummary()
        self.progress = progress
        started = time.perf_counter()
        async with self.db.begin() as conn:
            await self._read_localities(conn)
            bulk = (
                await conn.execute(sa.select(sa.func.count()).select_from(tables.sales))
            ).scalar() == 0
            # Into empty tables (PostgreSQL), even the unique constraints go: every row is
            # staged and merged in one set operation with plain INSERTs (no row can conflict
            # with a table that was empty), and the constraints are built once, by a sort.
            empty = (
                bulk
                and self.db.is_postgresql
                and (
                    await conn.execute(sa.select(sa.func.count()).select_from(tables.properties))
                ).scalar()
                == 0
            )
            if bulk:
                await self._drop_secondary_indexes(conn, unique=empty)
        # Into an empty database, stage everything and merge in a few big set operations
        # (hash joins and sorts); into a live one, merge in batches that keep transactions short.
        merge_rows = sys.maxsize if empty else self.bulk_merge_rows if bulk else self.merge_rows
        try:
            async with self.db.connect() as conn:  # one session: its temporary tables persist
                batch = _StagingBatch(conn, self, summary, merge_rows, into_empty=empty)
                await batch.open()
                for path in paths:
                    await self._load_file(path, batch, force=force, progress=progress)
                await batch.flush()
        finally:
            if bulk and progress is not None:
                progress.phase("building the indexes")
            async with self.db.begin() as conn:
                await self._create_missing_indexes(conn)
        async with self.db.begin() as conn:
            # Fresh planner statistics after a bulk load; keyset plans depend on them.
            await conn.execute(sa.text("ANALYZE" if self.db.is_postgresql else "PRAGMA optimize"))
        summary.seconds = time.perf_counter() - started
        return summary

    @staticmethod
    def _secondary_indexes() -> list[sa.Index]:
        return [i for t in BULK_INDEXED_TABLES for i in t.indexes if not i.unique]

    @staticmethod
    def _foreign_keys() -> list[sa.ForeignKeyConstraint]:
        return [c for t in BULK_INDEXED_TABLES for c in t.foreign_key_constraints]

    @staticmethod
    def _unique_constraints() -> list[sa.UniqueConstraint]:
        return [
            c
            for t in BULK_INDEXED_TABLES
            for c in t.constraints
            if isinstance(c, sa.UniqueConstraint)
        ]

    async def _drop_secondary_indexes(self, conn: AsyncConnection, *, unique: bool) -> None:
        for index in self._secondary_indexes():
            await conn.execute(sa.text(f"DROP INDEX IF EXISTS {index.name}"))
        if unique:
            for constraint in self._unique_constraints():
                await conn.execute(
                    sa.text(
                        f"ALTER TABLE {constraint.table.name} DROP CONSTRAINT IF EXISTS"
                        f" {constraint.name}"
                    )
                )
        if self.db.is_postgresql:
            # Row-by-row foreign key triggers cost more than the inserts themselves; the
            # constraints come back (and are checked in one pass each) after the load.
            for fk in self._foreign_keys():
                await conn.execute(
                    sa.text(f"ALTER TABLE {fk.table.name} DROP CONSTRAINT IF EXISTS {fk.name}")
                )

    async def _create_missing_indexes(self, conn: AsyncConnection) -> None:
        """Also repairs a load that was killed after dropping them."""

        def create_indexes(sync_conn: sa.Connection) -> None:
            for index in self._secondary_indexes():
                index.create(sync_conn, checkfirst=True)

        if self.db.is_postgresql:
            # Index builds sort the whole table: in memory, not in 64 MB runs on disk.
            await conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
        await conn.run_sync(create_indexes)
        if not self.db.is_postgresql:
            return
        existing = set(
            (
                await conn.execute(
                    sa.text("SELECT conname FROM pg_constraint WHERE contype IN ('f', 'u')")
                )
            )
            .scalars()
            .all()
        )
        for unique in self._unique_constraints():
            if unique.name not in existing:
                await conn.execute(sa.schema.AddConstraint(unique))
        for fk in self._foreign_keys():
            if fk.name not in existing:
                await conn.execute(sa.schema.AddConstraint(fk))

    async def _read_localities(self, conn: AsyncConnection) -> None:
        t = tables.localities
        rows = await conn.execute(sa.select(t.c.id, t.c.name, t.c.postcode))
        self._locality_ids = {(r.name, r.postcode): r.id for r in rows}

    async def _load_file(
        self, path: Path, batch: _StagingBatch, *, force: bool, progress: LoadProgress | None
    ) -> None:
        sha256, size = await asyncio.to_thread(_file_digest, path)
        if not force and await self._already_loaded(sha256):
            batch.summary.files_skipped += 1
            if progress is not None:
                progress.advance(size)
                progress.file_done(path, skipped=True)
            return
        if self.validate_in_database and path.name.lower().endswith((".csv", ".csv.gz")):
            await self._load_csv(path, batch, sha256, progress)
            return
        chunks = prepare_chunks(
            path,
            districts=self.districts,
            localities=self.only_localities,
            chunk_size=self.chunk_size,
            progress=progress.advance if progress is not None else None,
        )
        record = FileRecord(path.name, sha256)
        upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
        while (chunk := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
            for reject in chunk.rejects:
                self._reject(batch.summary, reject)
            record.rows_read += chunk.rows_read
            record.rows_rejected += len(chunk.rejects)
            if progress is not None:
                progress.rows(chunk.rows_read)
            if chunk.rows:
                await batch.stage(await self._with_locality_ids(chunk.rows, batch.summary), record)
        batch.summary.rows_read += record.rows_read
        batch.summary.files_loaded += 1
        if progress is not None:
            progress.file_done(path, skipped=False)
        await batch.file_done(record)

    async def _load_csv(
        self, path: Path, batch: _StagingBatch, sha256: str, progress: LoadProgress | None
    ) -> None:
        """A PSI CSV: its plain lines staged as text and validated by the database, the rest
        read by the csv module (db/ingest/csv_split.py); the thread splits and encodes the
        next chunk while the database converts this one."""
        chunks = read_csv_chunks(
            path,
            localities=self.only_localities,
            progress=progress.advance if progress is not None else None,
            chunk_rows=self.csv_chunk_rows,
        )
        encode = _copy_text if self.db.is_postgresql else _insert_rows

        def next_chunk() -> tuple[CsvChunk, Any] | None:
            chunk = next(chunks, None)
            return None if chunk is None else (chunk, encode(chunk.plain))

        record = FileRecord(path.name, sha256)
        upcoming = asyncio.ensure_future(asyncio.to_thread(next_chunk))
        while (item := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(next_chunk))
            chunk, payload = item
            rejects = await batch.stage_csv(chunk, payload, record)
            for reject in rejects:
                self._reject(batch.summary, reject)
            record.rows_read += len(chunk)
            record.rows_rejected += len(rejects)
            if progress is not None:
                progress.rows(len(chunk))
        batch.summary.rows_read += record.rows_read
        batch.summary.files_loaded += 1
        if progress is not None:
            progress.file_done(path, skipped=False)
        await batch.file_done(record)

    async def _already_loaded(self, sha256: str) -> bool:
        t = tables.ingested_files
        row = await self.db.fetch_one(sa.select(t.c.id).where(t.c.sha256 == sha256))
        return row is not None

    def _insert(self) -> Any:
        return postgresql.insert if self.db.is_postgresql else sqlite.insert

    async def record_files(self, records: Sequence[FileRecord]) -> None:
        if not records:
            return
        async with self.db.begin() as conn:
            for record in records:
                counts = {"rows_read": record.rows_read, "rows_rejected": record.rows_rejected}
                statement = (
                    self._insert()(tables.ingested_files)
                    .values(name=record.name, sha256=record.sha256, **counts)
                    .on_conflict_do_update(
                        index_elements=["sha256"], set_={**counts, "loaded_at": sa.func.now()}
                    )
                )
                await conn.execute(statement)

    def _reject(self, summary: LoadSummary, error: SourceError) -> None:
        summary.rejected[f"{error.error.field}: {error.error.reason}"] += 1
        if self.on_reject is not None:
            self.on_reject(error)

    async def _with_locality_ids(
        self, rows: list[tuple[Any, ...]], summary: LoadSummary
    ) -> list[tuple[Any, ...]]:
        await self._create_localities({row[LOCALITY_SLOT] for row in rows}, summary)
        ids, slot = self._locality_ids, LOCALITY_SLOT
        return [(*row[:slot], ids[row[slot]], *row[slot + 1 :]) for row in rows]

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
        async with self.db.begin() as conn:
            for start in range(0, len(values), 1000):
                batch = values[start : start + 1000]
                await conn.execute(
                    self._insert()(tables.localities).values(batch).on_conflict_do_nothing()
                )
            summary.localities_created += len(values)
            await self._read_localities(conn)


def _copy_text(plain: list[tuple[int, str]]) -> bytes:
    """COPY ... CSV input: the line number, then the line as read (it has no quotes)."""
    return "".join([f"{n},{text}\n" for n, text in plain]).encode()


def _insert_rows(plain: list[tuple[int, str]]) -> list[tuple[Any, ...]]:
    return [(n, *text.split(",")) for n, text in plain]


@dataclass
class FileRecord:
    name: str
    sha256: str
    rows_read: int = 0
    rows_rejected: int = 0


class _StagingBatch:
    """Rows staged on one connection, merged when `merge_rows` have accumulated.

    A file is recorded as loaded only after the merge that holds its last rows has committed,
    so an interrupted load leaves no file marked as loaded that is not fully in the tables.
    """

    def __init__(
        self,
        conn: AsyncConnection,
        loader: SalesLoader,
        summary: LoadSummary,
        merge_rows: int,
        *,
        into_empty: bool = False,
    ) -> None:
        self.conn = conn
        self.into_empty = into_empty
        """Tables empty and without unique constraints: one merge of plain INSERTs."""
        self.loader = loader
        self.summary = summary
        self.merge_rows = merge_rows
        self.staged = 0
        self.staged_files: list[FileRecord] = []  # rows in the current batch, per file
        self.finished: list[FileRecord] = []  # files whose rows are all staged

    @property
    def is_postgresql(self) -> bool:
        return self.loader.db.is_postgresql

    async def open(self) -> None:
        if self.is_postgresql:
            # Staging tables are session-local: they live in temp_buffers (8 MB by default,
            # settable only before the session's first temporary table). A batch of millions
            # of rows would otherwise round-trip through the OS on every step of the merge.
            await self.conn.execute(sa.text("SET temp_buffers = '2GB'"))
        else:
            # The staging tables live in SQLite's temporary database, whose page cache is
            # 2 MB by default: the merge's sorts and scans would go through temporary files.
            await self.conn.exec_driver_sql("PRAGMA temp.cache_size = -262144")
        for statement in merge_sql.CREATE_TEMPORARY_TABLES:
            await self.conn.execute(sa.text(statement))
        await self.conn.execute(sa.text(stage_sql.create_raw_table()))
        await self.conn.execute(sa.text(stage_sql.CREATE_DISTRICTS))
        await self.conn.execute(sa.text(stage_sql.CREATE_LOCALITY_IDS))
        await self.conn.execute(sa.text("DELETE FROM stage_districts"))
        districts = [{"code": c, "name": n} for c, n in self.loader.districts.items()]
        if districts:
            await self.conn.execute(
                sa.text("INSERT INTO stage_districts (code, name) VALUES (:code, :name)"),
                districts,
            )
        await self.conn.commit()

    async def stage_csv(
        self, chunk: CsvChunk, payload: Any, record: FileRecord
    ) -> list[SourceError]:
        """Stages `chunk`; returns its rejects in line order (as reading it row by row did)."""
        if not self.conn.in_transaction():
            await self.conn.begin()
        dialect = stage_sql.Dialect(self.is_postgresql)
        loader = self.loader
        python_rows: list[tuple[Any, ...]] = []
        rejects: list[SourceError] = []

        def check(item: SourceRow | SourceError | None) -> None:
            if item is None:
                return
            checked = item if isinstance(item, SourceError) else validate(item, loader.districts)
            if isinstance(checked, SourceError):
                rejects.append(checked)
            else:
                python_rows.append(checked)

        regular = 0
        if chunk.plain:
            if self.is_postgresql:
                driver = await raw_asyncpg_connection(self.conn)
                await driver.copy_to_table(
                    "stage_raw",
                    source=io.BytesIO(payload),
                    columns=stage_sql.RAW_COLUMNS,
                    format="csv",
                    force_not_null=stage_sql.RAW_COLUMNS[1:],
                )
            else:
                raw = await self.conn.get_raw_connection()
                placeholders = ", ".join("?" for _ in stage_sql.RAW_COLUMNS)
                await raw.driver_connection.executemany(  # type: ignore[union-attr]
                    f"INSERT INTO stage_raw VALUES ({placeholders})", payload
                )
            source, only = record.name, loader.only_localities
            for row in (await self._driver_sql(stage_sql.take_irregular(dialect))).all():
                check(csv_item(source, int(row[0]), list(row[1:]), only))
            keys = {(k[0], k[1]) for k in await self._execute(stage_sql.SELECT_LOCALITIES)}
            plain = {k for k in keys if stage_sql.locality_is_plain(*k)}
            await loader._create_localities(plain, self.summary)
            await self._execute("DELETE FROM stage_locality_ids")
            if plain:
                ids = loader._locality_ids
                await self.conn.execute(
                    sa.text("INSERT INTO stage_locality_ids VALUES (:name, :postcode, :id)"),
                    [{"name": n, "postcode": c, "id": ids[n, c]} for n, c in plain],
                )
            for name, postcode in keys - plain:  # rare: a locality spelt unusually
                taken = sa.text(stage_sql.take_locality())
                for row in await self.conn.execute(taken, {"name": name, "postcode": postcode}):
                    check(csv_item(source, int(row[0]), list(row[1:]), only))
            regular = (await self._driver_sql(stage_sql.insert_regular(dialect))).rowcount
            await self._execute(stage_sql.clear_raw(dialect))
        for item in chunk.parsed:
            check(item)
        if python_rows:
            rows = await loader._with_locality_ids(python_rows, self.summary)
            await self.stage(rows, record, flush=False)
        self.staged += regular
        if record not in self.staged_files:
            self.staged_files.append(record)
        if self.staged >= self.merge_rows:
            await self.flush()
        rejects.sort(key=lambda error: error.line)
        return rejects

    async def stage(
        self, rows: list[tuple[Any, ...]], record: FileRecord, *, flush: bool = True
    ) -> None:
        if not self.conn.in_transaction():
            await self.conn.begin()
        if self.is_postgresql:
            driver = await raw_asyncpg_connection(self.conn)
            await driver.copy_records_to_table("stage_sales", records=rows, columns=STAGE_COLUMNS)
        else:
            placeholders = ", ".join("?" for _ in STAGE_COLUMNS)
            raw = await self.conn.get_raw_connection()
            await raw.driver_connection.executemany(  # type: ignore[union-attr]
                f"INSERT INTO stage_sales VALUES ({placeholders})",
                [tuple(_sqlite_value(v) for v in row) for row in rows],
            )
        self.staged += len(rows)
        if record not in self.staged_files:
            self.staged_files.append(record)
        if flush and self.staged >= self.merge_rows:
            await self.flush()

    async def file_done(self, record: FileRecord) -> None:
        self.finished.append(record)
        if record not in self.staged_files:  # nothing staged: recorded with the next merge
            self.staged_files.append(record)
        if self.staged == 0:
            await self.flush()

    async def flush(self) -> None:
        if self.staged:
            await self._merge()
        done = [r for r in self.finished if r in self.staged_files]
        await self.loader.record_files(done)
        self.finished = [r for r in self.finished if r not in done]
        self.staged_files = [r for r in self.staged_files if r not in done]
        self.staged = 0

    async def _execute(self, statement: str) -> Any:
        return await self.conn.execute(sa.text(statement))

    async def _driver_sql(self, statement: str) -> Any:
        """A statement as written: its literals ('00:00') hold colons that text() would
        read as bind parameters."""
        return await self.conn.exec_driver_sql(statement)

    async def _match_new_sales(self, hook: NewSalesHook, first: int, last: int) -> None:
        """Alerts for the sales the batch added, in a transaction of their own right after
        it (set-based, idempotent: a sale recorded meanwhile may be matched twice), which
        also drops the batch's queued job (its outbox, for a load that dies before this)."""
        await self.conn.begin()
        result = await hook.match(self.conn, first, last)
        await hook.settle(self.conn, first, last)
        await self.conn.commit()
        self.summary.alerts_created += len(result.alert_ids)
        self.summary.alert_user_ids.update(result.user_ids)

    async def _merge(self) -> None:
        if self.loader.progress is not None:
            self.loader.progress.phase(f"merging {self.staged:,} staged rows into the tables")
        if not self.conn.in_transaction():
            await self.conn.begin()
        if self.is_postgresql:
            # Sorts and hash joins over a whole batch stay in memory instead of spilling.
            await self._execute("SET LOCAL work_mem = '1GB'")
        # Into empty tables every step scans and hashes or sorts whole tables, whatever the
        # statistics say: the planner's size estimates of the temporary tables suffice.
        analyze = self.is_postgresql and not self.into_empty
        if analyze:
            await self._execute("ANALYZE stage_sales")
        steps = merge_sql.INTO_EMPTY_STEPS if self.into_empty else merge_sql.MERGE_STEPS
        for statement in steps:
            await self._execute(statement)
            if analyze and statement.lstrip().startswith("INSERT INTO stage"):
                # Autovacuum never analyzes temporary tables: without row counts the planner
                # would guess nested loops over millions of rows.
                await self._execute(f"ANALYZE {statement.split()[2]}")
        # The localities whose market sales this batch changes get a new stats version in
        # the merge's transaction: a summary computed before it is never served again
        # (db/repositories/stats.py). Into empty tables too: a locality may have had a
        # summary of no sales.
        await self._execute(merge_sql.BUMP_STAGED_STATS_VERSIONS)
        restated = 0 if self.into_empty else (await self._execute(merge_sql.RESTATE_SALES)).rowcount
        # Sales above this id are the batch's new ones (and any recorded meanwhile: matching
        # is idempotent). Skipped, with the matching, while nobody has a search or a watch.
        hook = self.loader.new_sales
        watermark = (
            (await self.conn.execute(_LAST_SALE_ID)).scalar_one()
            if hook is not None and await hook.listening(self.conn)
            else None
        )
        inserted = (
            await self._execute(
                merge_sql.INSERT_SALES_INTO_EMPTY if self.into_empty else merge_sql.INSERT_SALES
            )
        ).rowcount
        new_range = None
        if hook is not None and watermark is not None and inserted:
            last = (await self.conn.execute(_LAST_SALE_ID)).scalar_one()
            new_range = (watermark + 1, last)
            await hook.queue(self.conn, *new_range)
        if not self.into_empty:  # else no property existed before the merge
            await self._execute(merge_sql.REFRESH_LAST_SALE)
        await self._execute(merge_sql.SET_LOCALITY_DISTRICTS)
        for statement in merge_sql.CLEAR_STAGE:
            await self._execute(statement)
        await self.conn.commit()
        if analyze:  # (into empty tables, the load's final ANALYZE does it)
            # The tables grow from nothing during a bulk load; keep the planner's sizes current.
            await self._execute("ANALYZE properties, sales")
            await self.conn.commit()
        if hook is not None and new_range is not None:
            await self._match_new_sales(hook, *new_range)
        self.summary.sales_inserted += inserted
        self.summary.sales_restated += restated
        self.summary.duplicates_skipped += self.staged - inserted - restated
