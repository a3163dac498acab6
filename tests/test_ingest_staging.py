"""The COPY path of a PSI CSV (plain lines validated and converted by the database) against
the row-by-row Python path it replaced: the same rejects (file, line, field, reason, in
order), the same counts and the same rows, on PostgreSQL and SQLite, for awkward rows and
for the real data slice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.cli import sale_files
from db.engine import Database, create_engine
from db.ingest.loader import LoadSummary, SalesLoader
from db.ingest.readers import CSV_COLUMNS, SourceError, read_districts, read_gazetteer
from db.migrate import upgrade
from tests.support.databases import SLICE, create_pg_database, drop_pg_database
from tests.support.rows import good_row
from tests.support.settings import DATA_DIR, settings_for

DUMPS = {
    "localities": "SELECT name, postcode, state, district_code, district, latitude, longitude"
    " FROM localities ORDER BY name, postcode",
    "properties": "SELECT p.vg_property_id, p.strata_lot, p.district_code, p.district,"
    " p.property_name, p.unit_number, p.house_number, p.street_name, l.name, l.postcode,"
    " p.postcode, p.area_m2, p.zoning, p.nature, p.primary_purpose, p.is_strata, p.latitude,"
    " p.longitude, p.last_sale_price, p.last_sale_date, p.source_downloaded_at"
    " FROM properties p JOIN localities l ON l.id = p.locality_id ORDER BY 1, 2",
    "sales": "SELECT p.vg_property_id, p.strata_lot, l.name, l.postcode, s.is_strata,"
    " s.district_code, s.contract_date, s.settlement_date, s.price, s.dealing_number,"
    " s.sale_code, s.interest_pct, s.area_m2, s.zoning, s.nature, s.primary_purpose,"
    " s.parcels_in_sale, s.is_market_sale, s.non_market_reasons, s.downloaded_at,"
    " s.source_file FROM sales s JOIN properties p ON p.id = s.property_id"
    " JOIN localities l ON l.id = s.locality_id ORDER BY s.id",
}


async def load_and_dump(
    url: str, files: list[Path], *, in_database: bool, localities: frozenset[str] | None = None
) -> tuple[list[str], LoadSummary, dict[str, list[str]]]:
    db = Database(create_engine(settings_for(url).database_url, statement_timeout_ms=0))
    rejects: list[str] = []

    def on_reject(error: SourceError) -> None:
        rejects.append(f"{error.source}:{error.line}: {error.error.field}: {error.error.reason}")

    loader = SalesLoader(
        db,
        gazetteer=read_gazetteer(DATA_DIR / "geonames_AU_postcodes.txt"),
        districts=read_districts(DATA_DIR / "nsw_psi_district_codes.csv"),
        localities=localities,
        on_reject=on_reject,
        validate_in_database=in_database,
    )
    try:
        summary = await loader.load(files)
        async with db.connect() as conn:
            dumps = {
                # repr: a NaN interest (float("nan") is accepted) equals itself.
                name: [repr(tuple(row)) for row in await conn.execute(sa.text(query))]
                for name, query in DUMPS.items()
            }
        return rejects, summary, dumps
    finally:
        await db.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        urls = tuple(f"sqlite:///{tmp_path / f'{side}.sqlite3'}" for side in ("a", "b"))
    else:
        names = [
            f"propintel_ingest_staging_{side}_{abs(hash(request.node.name)) % 10**6}"
            for side in ("a", "b")
        ]
        urls = tuple(create_pg_database(name) for name in names)
    for url in urls:
        upgrade(settings_for(url).database_url)
    yield urls[0], urls[1]
    if request.param == "postgresql":
        for name in names:
            drop_pg_database(name)


def assert_same_load(
    urls: tuple[str, str], files: list[Path], localities: frozenset[str] | None = None
) -> tuple[list[str], LoadSummary]:
    by_row, copied = (
        asyncio.run(load_and_dump(url, files, in_database=side, localities=localities))
        for url, side in zip(urls, (False, True), strict=True)
    )
    assert copied[0] == by_row[0]  # every reject, in order
    # Every summary line but the one with the time taken.
    assert copied[1].lines()[2:] == by_row[1].lines()[2:]
    assert (copied[1].files_loaded, copied[1].rows_read) == (
        by_row[1].files_loaded,
        by_row[1].rows_read,
    )
    for table in DUMPS:
        assert copied[2][table] == by_row[2][table], table
    return copied[0], copied[1]


def awkward_csv(path: Path) -> Path:
    """Rows each of which the database must either convert exactly as build_sale does or
    hand back to it: odd spellings of every field it reads."""
    template = dict.fromkeys(CSV_COLUMNS, "")
    base = good_row(property_id="880001", source_file="awkward.csv")
    variants: list[dict[str, str]] = [
        {},
        {"property_id": "0012"},
        {"property_id": " 12"},
        {"property_id": "+13"},
        {"property_id": "1_4"},
        {"property_id": "12a"},
        {"property_id": ""},
        {"purchase_price": "-5"},
        {"purchase_price": " 700000"},
        {"purchase_price": "999"},
        {"purchase_price": "1e6"},
        {"purchase_price": ""},
        {"dealing_number": ""},
        {"dealing_number": " "},
        {"contract_date": "2024-02-29"},
        {"contract_date": "2023-02-29"},
        {"contract_date": "2023-02-30"},
        {"contract_date": "2023-04-31"},
        {"contract_date": "0000-01-01"},
        {"contract_date": "1021-09-06"},
        {"contract_date": "20231201"},
        {"contract_date": "2023-1-01"},
        {"contract_date": "2023/12/01"},
        {"contract_date": "2024-01-09"},
        {"contract_date": "1989-12-31"},
        {"contract_date": ""},
        {"settlement_date": ""},
        {"settlement_date": "2023-11-30"},
        {"settlement_date": "2023-13-01"},
        {"settlement_date": "20240105"},
        {"download_datetime": "20240101x01:07"},
        {"download_datetime": "20241301 01:07"},
        {"download_datetime": "20240101 24:00"},
        {"download_datetime": "20240101 23:59"},
        {"download_datetime": "20240229 00:00"},
        {"download_datetime": "20240108 01:07:59"},
        {"download_datetime": "2024-01-08 01:07"},
        {"interest_of_sale_pct": ""},
        {"interest_of_sale_pct": "50"},
        {"interest_of_sale_pct": "0.5"},
        {"interest_of_sale_pct": "12."},
        {"interest_of_sale_pct": ".5"},
        {"interest_of_sale_pct": "1e2"},
        {"interest_of_sale_pct": "x"},
        {"area": "", "area_type": ""},
        {"area": "45.26", "area_type": "H"},
        {"area": "0.1", "area_type": "H"},
        {"area": "123.456789", "area_type": "M"},
        {"area": "12", "area_type": ""},
        {"area": "12", "area_type": "X"},
        {"area": "1,5"},
        {"area": "abc", "area_type": "M"},
        {"area": " 7", "area_type": "M"},
        {"parcels_in_sale": ""},
        {"parcels_in_sale": "2"},
        {"parcels_in_sale": "0"},
        {"parcels_in_sale": "x"},
        {"locality": "tempe"},
        {"locality": " TEMPE"},
        {"locality": "TEMPE "},
        {"locality": "\tTEMPE"},
        {"locality": "MOUNT  DRUITT", "postcode": "2770"},
        {"locality": ""},
        {"locality": "  "},
        {"locality": "X" * 65},
        {"locality": "CAFÉ TOWN", "postcode": "2000"},
        {"locality": "TEMPE", "postcode": " 2044"},
        {"locality": "TEMPE", "postcode": "123456789"},
        {"locality": "NEW PLACE", "postcode": ""},
        {"strata_lot_number": "4"},
        {"property_name": "THE BUILDING", "unit_number": "3"},
        {"sale_code": "AC", "zoning": "R2", "primary_purpose": "RESIDENCE"},
        {"source_file": "s" * 120},
        {"district_code": "999"},
        {"nature_of_property": "", "zoning": ""},
    ]
    lines = [",".join(CSV_COLUMNS)]
    for number, variant in enumerate(variants):
        row = {**template, **base, "dealing_number": f"AT{number:06}", **variant}
        if "property_id" not in variant:
            row["property_id"] = str(880001 + number)
        lines.append(",".join(row.values()))
    quoted = {**template, **base, "property_id": "880900", "dealing_number": "AQ1"}
    quoted["property_name"] = '"SMITH, JONES"'
    lines.append(",".join(quoted.values()))
    quoted["property_name"], quoted["dealing_number"] = '"""THE LODGE"""', "AQ2"
    quoted["property_id"] = "880901"
    lines.append(",".join(quoted.values()))
    quoted["property_name"], quoted["dealing_number"] = '"TWO\r\nLINES"', "AQ3"
    quoted["property_id"] = "880902"
    lines.append(",".join(quoted.values()))
    lines.append("only,three,fields")
    lines.append("")
    lines.append("\\.")
    lines.append(",".join({**template, **base, "property_id": "880950"}.values()))
    # A restated sale (a newer extract of one dealing) and a plain duplicate.
    restated = {**template, **base, "property_id": "880960", "dealing_number": "AR1"}
    lines.append(",".join(restated.values()))
    lines.append(
        ",".join(
            {
                **restated,
                "download_datetime": "20240115 02:00",
                "purchase_price": "1600000",
            }.values()
        )
    )
    lines.append(",".join(restated.values()))
    body = "\r\n".join(lines[:40]) + "\r\n" + "\n".join(lines[40:]) + "\n"
    path.write_bytes(body.encode())
    return path


def test_awkward_rows_load_as_row_by_row(two_databases: tuple[str, str], tmp_path: Path) -> None:
    rejects, summary = assert_same_load(two_databases, [awkward_csv(tmp_path / "awkward.csv")])
    assert len(rejects) > 15  # the test exercises rejects, not only conversions
    assert summary.sales_inserted > 40


@pytest.mark.slow
def test_the_real_slice_loads_as_row_by_row(two_databases: tuple[str, str]) -> None:
    files = sale_files([DATA_DIR])
    rejects, summary = assert_same_load(two_databases, files, localities=SLICE)
    assert rejects
    assert summary.sales_inserted > 10_000
