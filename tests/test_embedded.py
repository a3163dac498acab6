"""The README's first command: `propintel serve` on the embedded default (SQLite, no Redis),
loading the most recent years of data on first start, then answering over real HTTP."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.ingest.readers import CSV_COLUMNS
from tests.support.live import live_server


def slice_file(source: Path, target: Path, locality: str) -> int:
    """Copy the header and one locality's rows of a PSI CSV.gz."""
    kept = 0
    with (
        gzip.open(source, "rt", newline="") as reader,
        gzip.open(target, "wt", newline="") as writer,
    ):
        for number, line in enumerate(reader):
            if number == 0 or f",{locality}," in line:
                writer.write(line)
                kept += number > 0
    return kept


@pytest.fixture(scope="module")
def small_data_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    target = tmp_path_factory.mktemp("data")
    for year in (2010, 2023, 2024):
        name = f"nsw_psi_sales_{year}.csv.gz"
        slice_file(data_dir / name, target / name, "TEMPE")
    for name in ("geonames_AU_postcodes.txt", "nsw_psi_district_codes.csv"):
        shutil.copy(data_dir / name, target / name)
    return target


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded") / "propintel.sqlite3"


@pytest.fixture(scope="module")
def server(small_data_dir: Path, database: Path) -> Iterator[str]:
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "PROPINTEL_DATA_DIR": str(small_data_dir),
        "PROPINTEL_RECENT_YEARS": "2",
    }
    # The first start loads data before it answers: allow it time.
    with live_server(env, ready_path="/healthz", timeout=120) as base:
        yield base


def test_first_start_loads_the_recent_years_and_serves_graphql(server: str, database: Path) -> None:
    query = """{ locality(name: "Tempe", postcode: "2044") {
        stats { salesCount } properties(first: 100, orderBy: LAST_SALE_DATE_DESC) {
          edges { node { sales(first: 10) { edges { node { contractDate } } } } } } } }"""
    response = httpx.post(f"{server}/graphql", json={"query": query}, timeout=30)
    assert response.status_code == 200
    locality = response.json()["data"]["locality"]
    assert locality["stats"]["salesCount"] > 100
    assert len(locality["properties"]["edges"]) == 100
    # The 2023 and 2024 files were loaded; the 2010 file is outside the recent window.
    with sqlite3.connect(database) as connection:
        years = connection.execute(
            "SELECT DISTINCT substr(downloaded_at, 1, 4) FROM sales ORDER BY 1"
        ).fetchall()
    assert years == [("2023",), ("2024",)]


def test_graphiql_and_readiness(server: str) -> None:
    page = httpx.get(f"{server}/graphql", headers={"accept": "text/html"}, timeout=10)
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    ready = httpx.get(f"{server}/readyz", timeout=10).json()
    assert ready["database"] == {"status": "up", "dialect": "sqlite"}


def test_csv_columns_constant_matches_the_data(data_dir: Path) -> None:
    with gzip.open(data_dir / "nsw_psi_sales_2024.csv.gz", "rt") as handle:
        assert handle.readline().strip().split(",") == CSV_COLUMNS
