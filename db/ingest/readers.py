"""Readers for the source files: PSI CSV(.gz), raw VG weekly zip/DAT, GeoNames, districts.

Readers yield `SourceRow`s (or `SourceError`s, with file and line) and never raise on a bad
row, so one malformed line cannot stop a load of millions.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from db.ingest.records import RawSale, RowError

Progress = Callable[[int], object]

CSV_COLUMNS = [
    "district_code",
    "district_name",
    "property_id",
    "sale_counter",
    "download_datetime",
    "property_name",
    "unit_number",
    "house_number",
    "street_name",
    "locality",
    "postcode",
    "area",
    "area_type",
    "area_m2",
    "contract_date",
    "settlement_date",
    "purchase_price",
    "zoning",
    "nature_of_property",
    "primary_purpose",
    "strata_lot_number",
    "component_code",
    "sale_code",
    "interest_of_sale_pct",
    "dealing_number",
    "parcels_in_sale",
    "legal_description",
    "part_interest_flag",
    "non_market_price_flag",
    "date_error_flag",
    "source_file",
]
SALE_FILE_SUFFIXES = (".csv", ".csv.gz", ".zip", ".dat")


@dataclass(frozen=True, slots=True)
class SourceRow:
    source: str
    line: int
    raw: RawSale
    parcels_in_sale: int


@dataclass(frozen=True, slots=True)
class SourceError:
    source: str
    line: int
    error: RowError


def is_sale_file(path: Path) -> bool:
    """Sale files in a data directory: PSI CSVs (named *sales*) and VG zip/DAT files."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "sales" in name
    return name.endswith(SALE_FILE_SUFFIXES)


def _locality_needles(localities: frozenset[str] | None) -> tuple[bytes, ...] | None:
    if not localities:
        return None
    # A cheap bytes test before decoding and parsing: a slice of a few localities skips 99% of
    # lines unparsed. (Rows spelling a locality in lower case, a handful, are not matched.)
    return tuple(f"{sep}{name}{sep}".encode() for name in localities for sep in ",;")


class _CountingBinary(io.RawIOBase):
    """Reports compressed bytes consumed, so progress is exact without counting rows first."""

    def __init__(self, inner: IO[bytes], progress: Progress | None) -> None:
        self._inner = inner
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._progress is not None and n:
            self._progress(n)
        return n


def _binary_lines(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as handle:
        counted = io.BufferedReader(_CountingBinary(handle, progress), buffer_size=1 << 20)
        binary: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=counted) if path.suffix == ".gz" else counted
        )
        yield from binary


def _matching_lines(
    path: Path, needles: tuple[bytes, ...], progress: Progress | None
) -> Iterator[tuple[int, bytes]]:
    """The header and the lines containing a needle, found with bytes.find over 4 MiB blocks:
    a slice of a few localities out of 4.7 million lines costs the decompression and little more."""
    with path.open("rb") as handle:
        counted = io.BufferedReader(_CountingBinary(handle, progress), buffer_size=1 << 20)
        stream: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=counted) if path.suffix == ".gz" else counted
        )
        first_line_no, carry, at_start = 1, b"", True
        while True:
            chunk = stream.read(1 << 22)
            block = carry + chunk
            if not block:
                return
            cut = block.rfind(b"\n") + 1 if chunk else len(block)
            if cut == 0:
                carry = block
                continue
            block, carry = block[:cut], block[cut:]
            starts = {0} if at_start else set()
            at_start = False
            for needle in needles:
                found = block.find(needle)
                while found != -1:
                    starts.add(block.rfind(b"\n", 0, found) + 1)
                    found = block.find(needle, found + 1)
            line_no, previous = first_line_no, 0
            for start in sorted(starts):
                line_no += block.count(b"\n", previous, start)
                previous = start
                end = block.find(b"\n", start)
                yield line_no, block[start : end + 1 if end != -1 else len(block)]
            first_line_no += block.count(b"\n")


def _text_lines(
    path: Path, needles: tuple[bytes, ...] | None, progress: Progress | None
) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, or of the header and the lines naming a locality."""
    if needles is None:
        lines: Iterable[tuple[int, bytes]] = enumerate(_binary_lines(path, progress), start=1)
    else:
        lines = _matching_lines(path, needles, progress)
    for number, line in lines:
        yield number, line.decode("utf-8", errors="replace")


def read_csv_sales(
    path: Path, *, localities: frozenset[str] | None = None, progress: Progress | None = None
) -> Iterator[SourceRow | SourceError]:
    source = path.name
    line_no = 0

    def lines() -> Iterator[str]:
        nonlocal line_no
        for line_no, text in _text_lines(path, _locality_needles(localities), progress):  # noqa: B007
            yield text

    reader = csv.reader(lines())
    header = next(reader, None)
    if header != CSV_COLUMNS:
        yield SourceError(source, 1, RowError("header", "not the PSI sales CSV header"))
        return
    for row in reader:
        item = csv_item(source, line_no, row, localities)
        if item is not None:
            yield item


def csv_item(
    source: str, line_no: int, row: list[str], localities: frozenset[str] | None
) -> SourceRow | SourceError | None:
    """One CSV record as the loader sees it (None: outside the `localities` asked for)."""
    width = len(CSV_COLUMNS)
    if len(row) != width:
        return SourceError(source, line_no, RowError("row", f"{len(row)} fields, expected {width}"))
    if localities and row[9].strip().upper() not in localities:
        return None
    try:
        parcels = int(row[25]) if row[25] else 1
    except ValueError:
        return SourceError(source, line_no, RowError("parcels_in_sale", f"{row[25]!r}"))
    return SourceRow(
        source,
        line_no,
        RawSale(
            district_code=row[0],
            property_id=row[2],
            download_datetime=row[4],
            property_name=row[5],
            unit_number=row[6],
            house_number=row[7],
            street_name=row[8],
            locality=row[9],
            postcode=row[10],
            area=row[11],
            area_type=row[12],
            contract_date=row[14],
            settlement_date=row[15],
            price=row[16],
            zoning=row[17],
            nature=row[18],
            primary_purpose=row[19],
            strata_lot=row[20],
            sale_code=row[22],
            interest_pct=row[23],
            dealing_number=row[24],
            source_file=row[30][:96],
        ),
        parcels,
    )


# Field positions in a VG "B" (sale) record of the current (2001+) format.
_B_FIELDS = 24


def _parse_b_record(fields: list[str], source: str) -> RawSale:
    if len(fields) < _B_FIELDS:
        raise RowError("B record", f"{len(fields)} fields, expected at least {_B_FIELDS}")
    return RawSale(
        district_code=fields[1],
        property_id=fields[2],
        download_datetime=fields[4],
        property_name=fields[5],
        unit_number=fields[6],
        house_number=fields[7],
        street_name=fields[8],
        locality=fields[9],
        postcode=fields[10],
        area=fields[11],
        area_type=fields[12],
        contract_date=fields[13],
        settlement_date=fields[14],
        price=fields[15],
        zoning=fields[16],
        nature=fields[17],
        primary_purpose=fields[18],
        strata_lot=fields[19],
        sale_code=fields[21],
        interest_pct=fields[22],
        dealing_number=fields[23],
        source_file=source[:96],
    )


def _dat_members(path: Path) -> Iterator[tuple[str, Iterable[str]]]:
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.upper().endswith(".DAT"):
                    text = archive.read(info).decode("latin-1")
                    yield f"{path.name}/{info.filename}", text.splitlines()
    else:
        yield path.name, path.read_text(encoding="latin-1").splitlines()


def read_dat_sales(
    path: Path, *, localities: frozenset[str] | None = None, progress: Progress | None = None
) -> Iterator[SourceRow | SourceError]:
    """Sales ("B" records) of a VG weekly zip or a single DAT file.

    The DAT format has no parcel count, so it is computed here: the number of distinct
    parcels (property id + strata lot) that share a dealing number within this file.
    """
    needles = _locality_needles(localities)
    parsed: list[SourceRow] = []
    errors: list[SourceError] = []
    for source, lines in _dat_members(path):
        for line_no, line in enumerate(lines, start=1):
            if not line.startswith("B;"):
                continue
            if needles is not None and not any(n.decode() in line for n in needles):
                continue
            try:
                raw = _parse_b_record(line.split(";"), source)
            except RowError as error:
                errors.append(SourceError(source, line_no, error))
                continue
            if localities and raw.locality.strip().upper() not in localities:
                continue
            parsed.append(SourceRow(source, line_no, raw, 1))
    parcels: Counter[str] = Counter()
    seen: set[tuple[str, str, str]] = set()
    for row in parsed:
        key = (row.raw.dealing_number, row.raw.property_id, row.raw.strata_lot)
        if key not in seen:
            seen.add(key)
            parcels[row.raw.dealing_number] += 1
    if progress is not None:
        progress(path.stat().st_size)
    yield from errors
    for row in parsed:
        yield SourceRow(row.source, row.line, row.raw, parcels[row.raw.dealing_number])


def read_sales(
    path: Path, *, localities: frozenset[str] | None = None, progress: Progress | None = None
) -> Iterator[SourceRow | SourceError]:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return read_csv_sales(path, localities=localities, progress=progress)
    return read_dat_sales(path, localities=localities, progress=progress)


@dataclass(frozen=True, slots=True)
class Place:
    latitude: float
    longitude: float
    state: str


@dataclass(frozen=True)
class Gazetteer:
    """GeoNames places by (UPPER NAME, postcode), with postcode centroids as a fallback for the
    ~1.6% of PSI localities GeoNames does not list (new release-area suburbs)."""

    places: dict[tuple[str, str], Place]
    postcodes: dict[str, Place]

    def locate(self, name: str, postcode: str) -> Place | None:
        return self.places.get((name, postcode)) or self.postcodes.get(postcode)


def read_gazetteer(path: Path | None) -> Gazetteer:
    if path is None or not path.exists():
        return Gazetteer({}, {})
    places: dict[tuple[str, str], Place] = {}
    by_postcode: dict[str, list[Place]] = {}
    with path.open(encoding="utf-8") as handle:
        for fields in csv.reader(handle, delimiter="\t"):
            if len(fields) < 11 or not fields[9] or not fields[10]:
                continue
            place = Place(float(fields[9]), float(fields[10]), fields[4])
            places.setdefault((fields[2].strip().upper(), fields[1]), place)
            by_postcode.setdefault(fields[1], []).append(place)
    centroids = {
        code: Place(
            sum(p.latitude for p in group) / len(group),
            sum(p.longitude for p in group) / len(group),
            group[0].state,
        )
        for code, group in by_postcode.items()
    }
    return Gazetteer(places, centroids)


def read_districts(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    with path.open(encoding="utf-8") as handle:
        return {row["code"]: row["name"] for row in csv.DictReader(handle)}
