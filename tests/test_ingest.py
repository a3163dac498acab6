"""The loader: counts, idempotency, the raw VG weekly format, and malformed input."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.cli import LineProgress, load_sales, main, sale_files
from app.settings import get_settings
from db.engine import Database, create_engine
from db.ingest.readers import CSV_COLUMNS
from db.migrate import upgrade
from db.tables import properties, sales
from tests.support.apps import running_app
from tests.support.databases import SLICE, create_pg_database, drop_pg_database
from tests.support.graphql import gql
from tests.support.reference import Reference
from tests.support.rows import good_row
from tests.support.settings import DATA_DIR, settings_for


async def count_rows(url: str) -> tuple[int, int]:
    db = Database(create_engine(settings_for(url).database_url))
    try:
        row = await db.fetch_one(
            sa.select(
                sa.select(sa.func.count()).select_from(sales).scalar_subquery(),
                sa.select(sa.func.count()).select_from(properties).scalar_subquery(),
            )
        )
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await db.dispose()


def test_the_slice_loads_every_csv_row_once(sqlite_url: str, reference: Reference) -> None:
    sales_count, property_count = asyncio.run(count_rows(sqlite_url))
    assert sales_count == len(reference.sales)
    assert property_count == len(reference.by_property())


def test_reloading_adds_nothing(postgres_url: str, data_dir: Path) -> None:
    before = asyncio.run(count_rows(postgres_url))
    files = sale_files([data_dir])
    settings = settings_for(postgres_url)

    again = asyncio.run(load_sales(settings, files, localities=SLICE, show_progress=False))
    assert (again.files_loaded, again.files_skipped) == (0, len(files))  # known checksums

    forced = asyncio.run(
        load_sales(settings, files, localities=SLICE, force=True, show_progress=False)
    )
    assert forced.files_loaded == len(files)
    assert (forced.sales_inserted, forced.sales_restated) == (0, 0)
    assert forced.duplicates_skipped == forced.rows_read - forced.rows_rejected
    assert asyncio.run(count_rows(postgres_url)) == before


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        upgrade(settings_for(url).database_url)
        yield url
        return
    name = f"propintel_ingest_{abs(hash(request.node.name)) % 10**8}"
    url = create_pg_database(name)
    upgrade(settings_for(url).database_url)
    yield url
    drop_pg_database(name)


SALE = """
query($first: Int!, $filter: PropertyFilter) {
  properties(first: $first, filter: $filter, orderBy: LAST_SALE_PRICE_DESC) {
  edges { node { vgPropertyId strataLot areaM2 address locality { name latitude }
    sales(first: 5) { edges { node { contractDate settlementDate price dealingNumber
      isMarketSale nonMarketReasons parcelsInSale interestPct } } } } } } }
"""


async def query(url: str, text: str, **variables: object) -> dict[str, object]:
    async with running_app(settings_for(url)) as app:
        return (await gql(app.client, text, **variables)).ok()  # type: ignore[no-any-return]


def test_raw_weekly_zip_loads_like_the_csv(empty_database: str, data_dir: Path) -> None:
    weekly = data_dir / "raw" / "20240101.zip"
    summary = asyncio.run(load_sales(settings_for(empty_database), [weekly], show_progress=False))
    b_records = 0
    with zipfile.ZipFile(weekly) as archive:
        for name in archive.namelist():
            if name.endswith(".DAT"):
                text = archive.read(name).decode("latin-1")
                b_records += sum(1 for line in text.splitlines() if line.startswith("B;"))
    assert summary.rows_read == b_records == 1035
    # Five records of district 260 carry no property id: reported, not guessed at.
    assert summary.rejected == {"property_id: missing (the sale cannot be linked to a property)": 5}
    assert summary.sales_inserted + summary.duplicates_skipped + 5 == b_records

    # The first B record of 001_SALES_DATA_NNME_01012024.DAT, field by field.
    data = asyncio.run(query(empty_database, SALE, first=5, filter={"localityName": "ELRINGTON"}))
    (elrington,) = [e["node"] for e in data["properties"]["edges"]]  # type: ignore[index]
    assert elrington["vgPropertyId"] == 2857799
    assert elrington["areaM2"] == pytest.approx(251_500)  # 25.15 hectares
    assert elrington["address"] == "176 LAKE RD, ELRINGTON NSW 2325"
    sale = elrington["sales"]["edges"][0]["node"]
    assert sale == {
        "contractDate": "2023-12-19",
        "settlementDate": "2023-12-22",
        "price": 1330000,
        "dealingNumber": "AT729586",
        "isMarketSale": True,
        "nonMarketReasons": [],
        "parcelsInSale": 1,
        "interestPct": 0.0,
    }

    # The CSV of 2024 was parsed from the same zips: its rows from this zip must agree.
    csv_rows = {}
    with gzip.open(data_dir / "nsw_psi_sales_2024.csv.gz", "rt", newline="") as handle:
        import csv

        for row in csv.DictReader(handle):
            if row["source_file"].startswith("20240101.zip/"):
                csv_rows[(int(row["property_id"]), row["dealing_number"])] = row
    data = asyncio.run(query(empty_database, SALE, first=100))
    compared = 0
    for node in (e["node"] for e in data["properties"]["edges"]):  # type: ignore[index]
        for edge in node["sales"]["edges"]:
            source = csv_rows.get((node["vgPropertyId"], edge["node"]["dealingNumber"]))
            if source is not None:
                assert edge["node"]["price"] == int(source["purchase_price"])
                assert edge["node"]["contractDate"] == source["contract_date"]
                compared += 1
    assert compared > 50


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    template = dict.fromkeys(CSV_COLUMNS, "")
    lines = [",".join(CSV_COLUMNS)]
    for row in rows:
        lines.append(",".join({**template, **row}.values()))
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def test_malformed_rows_are_reported_with_file_and_line_and_the_rest_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_file = write_csv(
        tmp_path / "sales.csv",
        [
            good_row(),
            good_row(property_id="", dealing_number="X1"),  # line 3
            good_row(contract_date="2023-13-45", dealing_number="X2"),  # line 4
            good_row(purchase_price="12abc", dealing_number="X3"),  # line 5
            good_row(property_id="990002", interest_of_sale_pct="50", dealing_number="P1"),
            good_row(property_id="990003", purchase_price="500", dealing_number="P2"),
            good_row(property_id="990004", contract_date="1021-09-06", dealing_number="P3"),
            good_row(property_id="990005", parcels_in_sale="2", dealing_number="P4"),
        ],
    )
    with csv_file.open("a") as handle:
        handle.write("only,three,fields\r\n")  # line 10
    dat_file = tmp_path / "001_SALES_DATA_NNME_08012024.DAT"
    dat_file.write_text(
        "A;RTSALEDATA;001;20240108 01:07;VALNET;\n"
        "B;001;990010;1;20240108 01:07;;;5;MAIN RD;ABERDARE;2325;2;H;20231201;20231222;"
        "700000;R2;R;RESIDENCE;;RAN;;0;AT000002;\n"
        "B;001;990011;2;20240108 01:07;;;7;MAIN RD\n"  # line 3: truncated
        "Z;2;\n"
    )
    url = f"sqlite:///{tmp_path / 'bad.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv(
        "PROPINTEL_DATA_DIR", str(Path(__file__).resolve().parents[1] / "../shared/data")
    )
    get_settings.cache_clear()
    try:
        assert main(["load-data", "--quiet", str(csv_file), str(dat_file)]) == 0
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    assert "rejected sales.csv:3: property_id: missing" in err
    assert "rejected sales.csv:4: contract_date: not a date: '2023-13-45'" in err
    assert "rejected sales.csv:5: purchase_price: not whole dollars: '12abc'" in err
    assert "rejected sales.csv:10: row: 3 fields, expected 31" in err
    assert (
        "rejected 001_SALES_DATA_NNME_08012024.DAT:3: B record: 9 fields, expected at least 24"
        in err
    )
    assert "sales inserted 6" in out
    assert "rows rejected 5" in out

    data = asyncio.run(query(url, SALE, first=10))
    reasons = {
        e["node"]["vgPropertyId"]: e["node"]["sales"]["edges"][0]["node"]["nonMarketReasons"]
        for e in data["properties"]["edges"]  # type: ignore[index]
    }
    assert reasons == {
        990001: [],
        990002: ["PART_INTEREST"],
        990003: ["PRICE_BELOW_1000"],
        990004: ["DATE_ERROR"],
        990005: ["MULTI_PARCEL"],
        990010: [],
    }


def test_a_load_whose_output_is_not_a_terminal_prints_progress_lines(tmp_path: Path) -> None:
    """In a log or a container there is no bar (tqdm draws on a terminal only): the load
    prints a line per file, per merge and every few seconds, with rows and rate."""
    files = [
        write_csv(
            tmp_path / f"sales_{n}.csv",
            [good_row(property_id=f"99{n}{i:03}", dealing_number=f"Q{n}{i}") for i in range(3)],
        )
        for n in (1, 2)
    ]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'progress.sqlite3'}",
        "PROPINTEL_DATA_DIR": str(DATA_DIR.resolve()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "load-data", *map(str, files)],
        capture_output=True,  # pipes, not a terminal
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stdout.splitlines() if line.startswith("Loading sales: ")]
    assert progress[0].startswith("Loading sales: file 1/2 sales_1.csv read: 3 rows so far (")
    assert progress[1].startswith("Loading sales: file 2/2 sales_2.csv read: 6 rows so far (")
    assert " rows/s), 100% of " in progress[1]
    assert "Loading sales: merging 6 staged rows into the tables" in progress[2]
    assert "sales inserted 6" in done.stdout
    assert "\r" not in done.stdout + done.stderr  # no bar redrawn into the log


def test_progress_lines_come_every_few_seconds_while_a_file_is_read() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = LineProgress(2_000_000, 1, every_s=10, out=out, clock=lambda: now[0])
    progress.advance(500_000)
    progress.rows(50_000)  # nothing yet: less than 10 s in
    now[0] = 10.0
    progress.advance(500_000)  # 10 s: a line
    now[0] = 15.0
    progress.rows(50_000)  # 5 s after the last line: nothing
    now[0] = 21.0
    progress.rows(0)
    assert out.getvalue().splitlines() == [
        "Loading sales: 50,000 rows so far (5,000 rows/s), 50% of 2.0 MB read, 10 s",
        "Loading sales: 100,000 rows so far (4,762 rows/s), 50% of 2.0 MB read, 21 s",
    ]


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["load-data", "/no/such/file.csv"], {}, "/no/such/file.csv: no such file or directory"),
        (["migrate"], {"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a postgresql://"),
        (["load-data", "--years", "20x4"], {}, None),
    ],
)
def test_cli_errors_are_one_line_and_an_exit_code(
    argv: list[str],
    env: dict[str, str],
    message: str | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        if message is None:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
            assert exit_info.value.code == 2
            assert "not a year list" in capsys.readouterr().err
            return
        assert main(argv) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
