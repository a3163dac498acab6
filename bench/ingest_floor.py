"""`propintel load-data` against the floor: a raw COPY of the same CSV rows, in the same run.

    .venv/bin/python -m bench.ingest_floor                 # all of ../shared/data
    .venv/bin/python -m bench.ingest_floor --years 2023,2024 --json

Each figure on a database of its own, created and dropped here (`propintel_ingest_floor_*`):
- the floor: every sale CSV(.gz) decompressed by this process and streamed through one
  `COPY ... FROM STDIN (FORMAT csv, HEADER)` into an unindexed table of 31 text columns;
- `propintel load-data --quiet` of the same files into a freshly migrated database (a first,
  empty-database load: validation, localities, deduplication, flags, last sales, indexes).
The ratio is floor seconds / load seconds (1.0 would be loading at COPY speed).
`measure(database_url_base)` returns the figures as a dict (bench/run.py calls it).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "../shared/data"
PG_BASE = os.environ.get("PROPINTEL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
BLOCK = 1 << 20


def sale_files(data_dir: Path, years: set[int] | None = None) -> list[Path]:
    files = sorted(data_dir.glob("nsw_psi_sales_*.csv.gz"))
    if years:
        files = [f for f in files if int(f.name.split("_")[-1].split(".")[0]) in years]
    return files


async def _admin(base: str, statement: str) -> None:
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _fresh(base: str, name: str) -> str:
    await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _admin(base, f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


async def _blocks(handle: gzip.GzipFile) -> AsyncIterator[bytes]:
    while block := handle.read(BLOCK):
        yield block


async def raw_copy_seconds(url: str, files: Sequence[Path]) -> tuple[float, int]:
    """Seconds to COPY every row of `files` (decompressed here) into an unindexed table."""
    connection = await asyncpg.connect(url)
    try:
        with gzip.open(files[0], "rt", newline="") as handle:
            header = handle.readline().strip().split(",")
        columns = ", ".join(f'"{name}" text' for name in header)
        await connection.execute(f"CREATE TABLE raw_sales ({columns})")
        started = time.perf_counter()
        for path in files:
            with gzip.open(path, "rb") as handle:
                await connection.copy_to_table(
                    "raw_sales", source=_blocks(handle), format="csv", header=True
                )
        seconds = time.perf_counter() - started
        rows = await connection.fetchval("SELECT count(*) FROM raw_sales")
        return seconds, int(rows)
    finally:
        await connection.close()


def load_data_seconds(url: str, files: Sequence[Path]) -> tuple[float, str]:
    """Seconds of `propintel load-data --quiet` of `files` into a migrated, empty database."""
    env = {**os.environ, "DATABASE_URL": url, "PROPINTEL_DATA_DIR": str(DATA.resolve())}
    subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "load-data", "--quiet", *map(str, files)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, done.stdout


def measure(database_url_base: str = PG_BASE, *, years: set[int] | None = None) -> dict[str, Any]:
    files = sale_files(DATA, years)
    if not files:
        raise SystemExit(f"no sale files in {DATA}")
    floor_db, load_db = "propintel_ingest_floor_copy", "propintel_ingest_floor_load"
    try:
        url = asyncio.run(_fresh(database_url_base, floor_db))
        copy_s, rows = asyncio.run(raw_copy_seconds(url, files))
        asyncio.run(_admin(database_url_base, f'DROP DATABASE IF EXISTS "{floor_db}" WITH (FORCE)'))
        url = asyncio.run(_fresh(database_url_base, load_db))
        load_s, summary = load_data_seconds(url, files)
    finally:
        for name in (floor_db, load_db):
            asyncio.run(_admin(database_url_base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return {
        "files": len(files),
        "rows": rows,
        "raw_copy_s": round(copy_s, 2),
        "load_data_s": round(load_s, 2),
        "ratio": round(copy_s / load_s, 3),
        "load_data_summary": summary.strip().splitlines(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", help="comma-separated years (default: every file)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    years = {int(y) for y in args.years.split(",")} if args.years else None
    figures = measure(PG_BASE, years=years)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{figures['files']} files, {figures['rows']:,} rows")
    print(f"raw COPY into an unindexed table  {figures['raw_copy_s']:8.1f} s")
    print(f"propintel load-data               {figures['load_data_s']:8.1f} s")
    print(f"ratio (COPY / load-data)          {figures['ratio']:8.3f}")


if __name__ == "__main__":
    main()
