"""`propintel`: serve, worker, migrate, load-data, train, db-report.

Exit codes: 0 success, 1 the command failed (the message says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError
from pydantic_settings import SettingsError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.settings import InitialLoad, Settings, get_settings
from db.engine import Database, create_engine
from db.ingest.loader import LoadProgress, LoadSummary, NewSalesHook, SalesLoader
from db.ingest.readers import SourceError, is_sale_file, read_districts, read_gazetteer
from db.repositories import alerts

if TYPE_CHECKING:
    from tqdm import tqdm

YEAR_IN_NAME = re.compile(r"(?<!\d)(\d{4})(?!\d)")
REJECTS_SHOWN_PER_REASON = 5
PROGRESS_EVERY_S = 10.0
"""How often the load prints a progress line when its output is not a terminal."""


class CliError(Exception):
    """A failure to report as one line and exit code 1."""


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        problems = "; ".join(
            ": ".join(
                part
                for part in (
                    ".".join(str(p) for p in e["loc"]),
                    e["msg"].removeprefix("Value error, "),
                )
                if part
            )
            for e in error.errors()
        )
        raise CliError(f"invalid settings: {problems}") from None
    except SettingsError as error:  # a value that does not even parse (JSON settings)
        found = re.search(r'field "(\w+)"', str(error))
        field = Settings.model_fields.get(found.group(1)) if found else None
        name = field.alias if field is not None and field.alias else str(error)
        raise CliError(f"invalid settings: {name}: not valid JSON") from None


def sale_files(paths: Sequence[Path], *, years: set[int] | None = None) -> list[Path]:
    """The sale files named, directories expanded (not recursively), optionally by year."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and is_sale_file(p))
        elif path.is_file():
            found.append(path)
        else:
            raise CliError(f"{path}: no such file or directory")
    if years is not None:
        found = [p for p in found if (m := YEAR_IN_NAME.search(p.name)) and int(m[1]) in years]
    return found


def parse_years(text: str) -> set[int]:
    """'2024', '2020-2024' or '2001,2024'."""
    years: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            years.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a year list: {text!r}") from None
    return years


class RejectPrinter:
    """Prints the first few rejected rows of each reason, with file and line."""

    def __init__(self) -> None:
        self.shown: Counter[str] = Counter()

    def __call__(self, error: SourceError) -> None:
        reason = f"{error.error.field}: {error.error.reason}"
        self.shown[reason] += 1
        if self.shown[reason] <= REJECTS_SHOWN_PER_REASON:
            print(f"rejected {error.source}:{error.line}: {reason}", file=sys.stderr)
        elif self.shown[reason] == REJECTS_SHOWN_PER_REASON + 1:
            print(f"rejected: more rows with {reason!r} (counted in the summary)", file=sys.stderr)


def _size(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


class LineProgress:
    """Progress as lines, for output that is not a terminal (a log, a container): one line
    per file read, one per long step (a merge, the index rebuild), and one every `every_s`
    seconds in between; each with the rows read so far and their rate."""

    def __init__(
        self,
        total_bytes: int,
        files: int,
        *,
        every_s: float = PROGRESS_EVERY_S,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_bytes = total_bytes
        self.files = files
        self.every_s = every_s
        self.out = out
        self.clock = clock
        self.started = self.last_line = clock()
        self.bytes_done = 0
        self.rows_done = 0
        self.files_done = 0
        self._lock = threading.Lock()  # `advance` comes from the reader's thread

    def _print(self, text: str) -> None:
        print(f"Loading sales: {text}", file=self.out or sys.stdout, flush=True)

    def _status(self, now: float) -> str:
        elapsed = now - self.started
        share = f"{self.bytes_done / self.total_bytes:.0%} of " if self.total_bytes else ""
        rate = self.rows_done / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.rows_done:,} rows so far ({rate:,.0f} rows/s), {share}"
            f"{_size(self.total_bytes)} read, {elapsed:,.0f} s"
        )

    def _tick(self) -> None:
        now = self.clock()
        if now - self.last_line >= self.every_s:
            self.last_line = now
            self._print(self._status(now))

    def advance(self, n: int) -> None:
        with self._lock:
            self.bytes_done += n
            self._tick()

    def rows(self, n: int) -> None:
        with self._lock:
            self.rows_done += n
            self._tick()

    def file_done(self, path: Path, *, skipped: bool) -> None:
        with self._lock:
            self.files_done += 1
            self.last_line = now = self.clock()
            what = "skipped (loaded before)" if skipped else "read"
            self._print(
                f"file {self.files_done}/{self.files} {path.name} {what}: {self._status(now)}"
            )

    def phase(self, text: str) -> None:
        with self._lock:
            self.last_line = now = self.clock()
            self._print(f"{text} ({now - self.started:,.0f} s)")


class BarProgress:
    """Progress as a tqdm bar (on a terminal): bytes read, rows and the current step."""

    def __init__(self, bar: tqdm[Any]) -> None:
        self.bar = bar
        self.rows_done = 0

    def advance(self, n: int) -> None:
        self.bar.update(n)

    def rows(self, n: int) -> None:
        self.rows_done += n
        self.bar.set_postfix_str(f"{self.rows_done:,} rows", refresh=False)

    def file_done(self, path: Path, *, skipped: bool) -> None:
        pass

    def phase(self, text: str) -> None:
        self.bar.set_postfix_str(f"{self.rows_done:,} rows; {text}")


async def load_sales(
    settings: Settings,
    files: Sequence[Path],
    *,
    localities: frozenset[str] | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> LoadSummary:
    """`show_progress`: a bar on a terminal (tqdm writes to stderr), else progress lines on
    stdout."""
    from tqdm import tqdm

    data_dir = settings.data_dir
    # No statement timeout: a bulk merge of millions of rows is one long statement by design.
    db = Database(create_engine(settings.database_url, pool_size=2, statement_timeout_ms=0))
    loader = SalesLoader(
        db,
        gazetteer=read_gazetteer(data_dir / "geonames_AU_postcodes.txt" if data_dir else None),
        districts=read_districts(data_dir / "nsw_psi_district_codes.csv" if data_dir else None),
        localities=localities,
        on_reject=RejectPrinter(),
        new_sales=NewSalesHook(
            alerts.anyone_listening,
            alerts.match_sales,
            queue=alerts.queue_new_sales,
            settle=alerts.settle_new_sales,
        ),
    )
    total = sum(f.stat().st_size for f in files)
    try:
        if show_progress and sys.stderr.isatty():
            with tqdm(total=total, unit="B", unit_scale=True, desc="Loading sales") as bar:
                shown = BarProgress(bar)
                summary = await loader.load(files, force=force, progress=shown)
                shown.phase("done")
        else:
            progress: LoadProgress | None = (
                LineProgress(total, len(files)) if show_progress else None
            )
            summary = await loader.load(files, force=force, progress=progress)
    finally:
        await db.dispose()
    if summary.sales_inserted or summary.sales_restated:
        await publish_ingest_invalidation(settings)
    if summary.alert_user_ids:  # the load made alerts: wake their users' subscriptions
        from app.streams.broker import AlertBroker

        broker = AlertBroker(settings)
        await broker.publish(summary.alert_user_ids)  # best effort, never raises
        await broker.close()
    return summary


async def publish_ingest_invalidation(settings: Settings) -> None:
    """A load can touch any property, locality, list or statistic: running servers drop
    every cached entry (their L1 through pub/sub). Without Redis there is nothing shared to
    drop; each server's L1 entries expire by TTL."""
    if not settings.redis_url or not settings.cache_enabled:
        return
    from app.cache import TieredCache

    cache = TieredCache(
        ttls=settings.cache_ttls,
        l1_max_entries=100,
        redis_url=settings.redis_url,
        namespace=settings.cache_namespace,
    )
    try:
        counts = await cache.invalidate(patterns=["*"])
        print(f"cache: {counts.l2_entries} shared entries invalidated")
    except (OSError, RedisError) as error:  # Redis down: the load stands; say so
        print(f"cache: could not publish the invalidation ({error})", file=sys.stderr)
    finally:
        await cache.close()


def _print_summary(summary: LoadSummary) -> None:
    for line in summary.lines():
        print(line)


def cmd_migrate(_args: argparse.Namespace) -> None:
    from db.migrate import upgrade

    upgrade(_settings().database_url)
    print("database schema is current")


def cmd_load_data(args: argparse.Namespace) -> None:
    settings = _settings()
    paths = args.paths or ([settings.data_dir] if settings.data_dir else [])
    if not paths:
        raise CliError("no PATHS given and PROPINTEL_DATA_DIR is not set (nor ../shared/data)")
    files = sale_files(paths, years=args.years)
    if not files:
        raise CliError(
            "no sale files (*.csv, *.csv.gz, *.zip, *.DAT) in " + ", ".join(map(str, paths))
        )
    if not args.no_migrate:
        from db.migrate import upgrade

        upgrade(settings.database_url)
    localities = (
        frozenset(n.strip().upper() for n in args.localities.split(","))
        if args.localities
        else None
    )
    summary = asyncio.run(
        load_sales(
            settings, files, localities=localities, force=args.force, show_progress=not args.quiet
        )
    )
    _print_summary(summary)


async def _has_sales(settings: Settings) -> bool:
    import sqlalchemy as sa

    from db.tables import sales

    db = Database(create_engine(settings.database_url, pool_size=1), pool_size=1)
    try:
        row = await db.fetch_one(sa.select(sa.exists().where(sales.c.id.is_not(None))))
        return bool(row[0])
    finally:
        await db.dispose()


def initial_load_files(settings: Settings) -> list[Path]:
    """The files `serve` loads into an empty database: the last few years, or everything."""
    if settings.data_dir is None or settings.initial_load is InitialLoad.NONE:
        return []
    files = sale_files([settings.data_dir])
    if settings.initial_load is InitialLoad.RECENT:
        years = sorted({int(m[1]) for f in files if (m := YEAR_IN_NAME.search(f.name))})
        recent = set(years[-settings.recent_years :])
        files = sale_files([settings.data_dir], years=recent)
    return files


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.telemetry import multiprocess
    from db.migrate import upgrade

    # First: prometheus-client picks where values live when it is imported (in this
    # process with one worker, in each worker process with several).
    multiprocess.prepare(multiprocess.default_directory(args.port))
    settings = _settings()
    level = _configure_logging(settings, args.log_level)
    # The workers' app factory configures their logs from the settings: the same level.
    os.environ["PROPINTEL_LOG_LEVEL"] = level
    get_settings.cache_clear()
    if args.full_history:
        settings = settings.model_copy(update={"initial_load": InitialLoad.FULL})
    upgrade(settings.database_url)
    if not asyncio.run(_has_sales(settings)):
        files = initial_load_files(settings)
        if files:
            print(
                f"First start: loading {len(files)} sale file(s) from {settings.data_dir} "
                f"({settings.initial_load.value}; `propintel load-data` adds the rest)."
            )
            _print_summary(asyncio.run(load_sales(settings, files)))
        else:
            print("The database is empty and no data directory is set: serving an empty API.")
    if args.no_worker:  # the app factory reads its settings from the environment
        os.environ["PROPINTEL_WORKER"] = "false"
        get_settings.cache_clear()
    logging.getLogger("propintel.serve").info(
        "GraphQL at http://%s:%s/graphql", args.host, args.port
    )
    uvicorn.run(
        "app.asgi:create_default_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=level,
        log_config=None,  # ours (app/telemetry/logging.py), in this process and each worker
        access_log=False,  # our access line (app/http/observe.py) replaces uvicorn's
        ws="websockets-sansio",  # subscriptions; uvicorn's default implementation is deprecated
        # A worker imports the whole app (~2.5 s of CPU) before it answers uvicorn's health
        # ping; on a busy machine 5 s (the default) killed and restarted workers at start.
        timeout_worker_healthcheck=30,
    )


def _configure_logging(settings: Settings, level: str | None) -> str:
    """structlog for this process (JSON in prod); the level: --log-level, else the settings'."""
    from app.telemetry.logging import configure_logging

    chosen = (level or settings.log_level).lower()
    try:
        configure_logging(settings.logs_as_json, chosen)
    except ValueError as error:
        raise CliError(str(error)) from None
    return chosen


def cmd_worker(args: argparse.Namespace) -> None:
    """Runs jobs until SIGTERM or SIGINT (then stops gracefully). It does not migrate: the
    API (`serve`) or `migrate` owns the schema."""
    from app.telemetry import multiprocess

    multiprocess.single_process()  # its own metrics, on its own port (not summed by serve)
    from app.background import run_worker

    settings = _settings()
    _configure_logging(settings, args.log_level)
    if settings.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        from app.http.metrics import preinitialise

        preinitialise(None)
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    asyncio.run(run_worker(settings, concurrency=args.concurrency))


def cmd_train(args: argparse.Namespace) -> None:
    """Trains in this process (a CLI has no requests to stall), stores the model in the
    registry, and prints its validation figures."""
    from app.estimates.tasks import store, train_artifact
    from db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    options = {"holdout_weeks": args.holdout_weeks}
    print(f"Training on {settings.database_url.split('@')[-1]} ...", flush=True)
    try:
        trained = train_artifact(settings.database_url, options)
    except ValueError as error:  # e.g. too few sales to train on
        raise CliError(f"cannot train: {error}") from None

    async def register() -> int:
        db = Database(create_engine(settings.database_url, pool_size=1), pool_size=1)
        try:
            return (await store(db, trained, activate=args.activate)).version
        finally:
            await db.dispose()

    version = asyncio.run(register())
    m = trained.metrics
    print(
        f"model {version}{' (active)' if args.activate else ''}: data {trained.data_from} to "
        f"{trained.data_to}; held out {m.get('validation_from')} to {m.get('validation_to')} "
        f"({m['n_validation']} sales): MdAPE {m['mdape']:.1%}, within 10% {m['within_10']:.1%}, "
        f"within 20% {m['within_20']:.1%}, 80% interval coverage {m['coverage']:.1%} "
        f"(locality x strata median: MdAPE {m['baseline_mdape']:.1%}); "
        f"{trained.training_seconds:.0f} s"
    )


def cmd_db_report(_args: argparse.Namespace) -> None:
    """The database advisor's report (what `databaseInsights` answers) as text. SQLite:
    "not available", exit 0."""
    from app.insights.report import collect, render
    from app.insights.service import DatabaseAdvisor

    settings = _settings()

    async def report() -> str:
        db = Database(create_engine(settings.database_url, pool_size=1), pool_size=1)
        try:
            return render(await collect(DatabaseAdvisor(db)))
        finally:
            await db.dispose()

    print(asyncio.run(report()), end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="propintel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (migrates, loads data on first start)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", help="default: PROPINTEL_LOG_LEVEL (info)")
    serve.add_argument(
        "--full-history",
        action="store_true",
        help="on first start load all of 2001-2024 rather than the most recent years",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="run no job worker in the API processes (run `propintel worker` instead)",
    )
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser(
        "worker", help="run background jobs (alerts, webhooks, trainings) until SIGTERM"
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="jobs run at once (default: PROPINTEL_WORKER_CONCURRENCY)",
    )
    worker.add_argument("--log-level", help="default: PROPINTEL_LOG_LEVEL (info)")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="bring the database schema to the latest version")
    migrate.set_defaults(handler=cmd_migrate)

    load = commands.add_parser("load-data", help="load PSI sales (CSV, CSV.gz, VG zip/DAT)")
    load.add_argument(
        "paths", nargs="*", type=Path, help="files or directories (default: data dir)"
    )
    load.add_argument("--years", type=parse_years, help="only files of these years, e.g. 2020-2024")
    load.add_argument("--localities", help="only these localities, comma-separated (test slices)")
    load.add_argument("--force", action="store_true", help="re-read files already loaded")
    load.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    load.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    load.set_defaults(handler=cmd_load_data)

    train = commands.add_parser("train", help="train a price model and add it to the registry")
    train.add_argument(
        "--holdout-weeks", type=int, default=8, help="most recent weeks held out for validation"
    )
    train.add_argument(
        "--no-activate",
        dest="activate",
        action="store_false",
        help="register the model without serving it (activateModel serves it later)",
    )
    train.set_defaults(handler=cmd_train)

    db_report = commands.add_parser(
        "db-report", help="the database advisor: slow queries, index advice, maintenance"
    )
    db_report.set_defaults(handler=cmd_db_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except CliError as error:
        print(f"propintel: {error}", file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as error:
        # The database or a file failed under us: say which, in one line, without a traceback.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"propintel: {type(error).__name__}: {first_line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
