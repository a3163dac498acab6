"""Plain CSV lines validated and converted by the database, into `stage_sales`.

The lines are staged as text (`stage_raw`: the line number and the 31 CSV fields). A row is
converted here only when every field is in the one spelling whose meaning is certain (digits
for numbers, YYYY-MM-DD for a real date, ...) and its locality is spelt as the loader keys it
(`locality_is_plain`): `build_sale` would accept it and give the same values
(tests/test_ingest_staging.py compares both paths). Every other row is taken out of the
table (`take_irregular`, `take_locality`) and goes through `build_sale` itself, which
rejects it or stages it with the message and value it always gave. So the SQL never has to
reproduce an error message, only recognise rows that have none.

Written for both dialects with cheap built-ins (regular expressions are PostgreSQL's only
for the rare decimal with a point, GLOB SQLite's): this runs on every row of a load.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.ingest.readers import CSV_COLUMNS
from db.ingest.records import EARLIEST_PLAUSIBLE_CONTRACT, STAGE_COLUMNS, NonMarketReason

RAW_COLUMNS: tuple[str, ...] = ("n", *(f"c{i}" for i in range(len(CSV_COLUMNS))))
_F = {name: f"c{i}" for i, name in enumerate(CSV_COLUMNS)}


def _days() -> list[str]:
    """Every MM-DD of a year but 02-29 (a leap day goes the Python way: rare, and valid in
    some years only)."""
    out = []
    for month, last in enumerate((31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1):
        out += [f"{month:02}-{day:02}" for day in range(1, last + 1)]
    return out


def _in(expression: str, values: list[str]) -> str:
    # A constant list: PostgreSQL hashes it; SQLite builds an ephemeral index.
    return f"{expression} IN ({', '.join(repr(v) for v in values)})"


_MONTH_DAYS = _days()
_CLOCK = [f"{h:02}:{m:02}" for h in range(24) for m in range(60)]


@dataclass(frozen=True)
class Dialect:
    postgresql: bool

    def digit_mask(self, expression: str) -> str:
        """`expression` with every digit turned into 0 (SQLite has no translate())."""
        if self.postgresql:
            return f"translate({expression}, '0123456789', '0000000000')"
        for digit in "123456789":
            expression = f"replace({expression}, '{digit}', '0')"
        return expression

    def decimal(self, col: str) -> str:
        """Digits, optionally a point and more digits: float() and the database read it
        to the same double (both round correctly)."""
        if self.postgresql:
            return f"({col} ~ '^[0-9]+(\\.[0-9]+)?$' AND length({col}) <= 16)"
        return (
            f"(length({col}) <= 16 AND {col} GLOB '[0-9]*' AND {col} NOT GLOB '*[^0-9.]*'"
            f" AND {col} NOT GLOB '*.*.*' AND {col} NOT GLOB '*.')"
        )

    def cast(self, expression: str, kind: str) -> str:
        if self.postgresql:
            return f"CAST({expression} AS {kind})"
        if kind in ("DATE", "TIMESTAMP"):
            return expression  # SQLite keeps them as ISO text (what the ORM writes)
        sqlite_kind = {"DOUBLE PRECISION": "REAL", "BIGINT": "INTEGER"}.get(kind, kind)
        return f"CAST({expression} AS {sqlite_kind})"


def _date(d: Dialect, col: str) -> str:
    """YYYY-MM-DD, a real date (year 0001..9999; not a leap day)."""
    return (
        f"({d.digit_mask(col)} = '0000-00-00' AND {col} NOT LIKE '0000%'"
        f" AND {_in(f'substr({col}, 6, 5)', _MONTH_DAYS)})"
    )


def regular(d: Dialect) -> str:
    """The rows converted here, but for the locality (the loader checks the distinct
    (name, postcode) pairs, `locality_is_plain`): each test mirrors one of `build_sale`'s
    or the reader's, cheaply (one pass over the digits of three fields, hashed lists of
    the valid days and times), as this runs on every row."""
    f = _F
    pid, price, parcels = f["property_id"], f["purchase_price"], f["parcels_in_sale"]
    dt = f["download_datetime"]
    checks = [
        f"{f['dealing_number']} <> ''",
        f"{pid} <> ''",
        f"{price} <> ''",
        f"length({pid}) <= 9",
        f"length({price}) <= 18",
        f"length({parcels}) <= 9",
        f"ltrim({pid} || {price} || {parcels}, '0123456789') = ''",
        _date(d, f["contract_date"]),
        f"({f['settlement_date']} = '' OR {_date(d, f['settlement_date'])})",
        f"{d.digit_mask(dt)} = '00000000 00:00'",
        f"{dt} NOT LIKE '0000%'",
        _in(f"(substr({dt}, 5, 2) || '-' || substr({dt}, 7, 2))", _MONTH_DAYS),
        _in(f"substr({dt}, 10, 5)", _CLOCK),
        f"({f['interest_of_sale_pct']} IN ('', '0') OR {d.decimal(f['interest_of_sale_pct'])})",
        f"({f['area']} = '' OR {d.decimal(f['area'])})",
    ]
    return "(" + "\n    AND ".join(checks) + ")"


def locality_is_plain(name: str, postcode: str) -> bool:
    """What `validate` (loader.py) keys a locality by, unchanged: then the staged key and
    postcode are the raw fields."""
    return (
        bool(name)
        and name == name.strip().upper()
        and len(name) <= 64
        and postcode == postcode.strip()
        and len(postcode) <= 8
    )


def _converted(d: Dialect) -> str:
    """The typed fields of a regular row (subquery `t`), before the market-sale flags."""
    f = _F
    dt = f["download_datetime"]
    downloaded = (
        f"substr({dt}, 1, 4) || '-' || substr({dt}, 5, 2) || '-' || substr({dt}, 7, 2)"
        f" || ' ' || substr({dt}, 10, 5)"
    )
    downloaded = (
        d.cast(downloaded, "TIMESTAMP") if d.postgresql else f"{downloaded} || ':00.000000'"
    )
    area = d.cast(f["area"], "DOUBLE PRECISION")

    def text(name: str) -> str:
        return f"NULLIF({f[name]}, '')"

    return f"""
    {f["district_code"]} AS district_code,
    {d.cast(f["property_id"], "INTEGER")} AS vg_property_id,
    {f["strata_lot_number"]} AS strata_lot,
    {downloaded} AS downloaded_at,
    {text("property_name")} AS property_name,
    {text("unit_number")} AS unit_number,
    {text("house_number")} AS house_number,
    {text("street_name")} AS street_name,
    l.id AS locality_id,
    {f["postcode"]} AS postcode,
    CASE WHEN {f["area"]} = '' THEN NULL WHEN {f["area_type"]} = 'H' THEN {area} * 10000
        WHEN {f["area_type"]} = 'M' THEN {area} END AS area_m2,
    {d.cast(f["contract_date"], "DATE")} AS contract_date,
    CASE WHEN {f["settlement_date"]} = '' THEN NULL
        ELSE {d.cast(f["settlement_date"], "DATE")} END AS settlement_date,
    {d.cast(f["purchase_price"], "BIGINT")} AS price,
    {text("zoning")} AS zoning,
    {text("nature_of_property")} AS nature,
    {text("primary_purpose")} AS primary_purpose,
    {text("sale_code")} AS sale_code,
    CASE WHEN {f["interest_of_sale_pct"]} = '' THEN 0.0
        ELSE {d.cast(f["interest_of_sale_pct"], "DOUBLE PRECISION")} END AS interest_pct,
    {f["dealing_number"]} AS dealing_number,
    CASE WHEN {f["parcels_in_sale"]} = '' THEN 1
        ELSE {d.cast(f["parcels_in_sale"], "INTEGER")} END AS parcels_in_sale,
    substr({f["source_file"]}, 1, 96) AS source_file,
    dn.name AS district"""


def _reasons(d: Dialect) -> str:
    """`non_market_reasons` of records.py, in its order, comma separated."""
    registered = (
        "CAST(t.downloaded_at AS DATE)" if d.postgresql else "substr(t.downloaded_at, 1, 10)"
    )
    earliest = f"'{EARLIEST_PLAUSIBLE_CONTRACT.isoformat()}'"
    if d.postgresql:
        earliest = f"DATE {earliest}"
    r = NonMarketReason
    parts = [
        f"CASE WHEN t.interest_pct <> 0 THEN '{r.PART_INTEREST},' ELSE '' END",
        f"CASE WHEN t.price < 1000 THEN '{r.PRICE_BELOW_1000},' ELSE '' END",
        f"CASE WHEN t.contract_date < {earliest} OR t.contract_date > {registered}"
        " OR (t.settlement_date IS NOT NULL AND t.settlement_date < t.contract_date)"
        f" THEN '{r.DATE_ERROR},' ELSE '' END",
        f"CASE WHEN t.parcels_in_sale > 1 THEN '{r.MULTI_PARCEL},' ELSE '' END",
    ]
    return "rtrim(" + " || ".join(parts) + ", ',')"


def create_raw_table() -> str:
    columns = ", ".join(f"{name} TEXT" for name in RAW_COLUMNS[1:])
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS stage_raw (n BIGINT, {columns})"


CREATE_LOCALITY_IDS = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS stage_locality_ids"
    " (name TEXT, postcode TEXT, id BIGINT, PRIMARY KEY (name, postcode))"
)
"""The ids of a chunk's localities, from the loader's map: the staging session reads no
table of the database before its merge (on SQLite a read would hold a lock that keeps the
loader's other connection from creating localities)."""
CREATE_DISTRICTS = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS stage_districts (code TEXT PRIMARY KEY, name TEXT)"
)


TAKE_IRREGULAR = "DELETE FROM stage_raw WHERE NOT {regular} RETURNING {columns}"
SELECT_LOCALITIES = "SELECT DISTINCT c9, c10 FROM stage_raw"
TAKE_LOCALITY = "DELETE FROM stage_raw WHERE c9 = :name AND c10 = :postcode RETURNING {columns}"


def take_irregular(d: Dialect) -> str:
    """Removes the rows the database does not convert and returns them, for Python."""
    return TAKE_IRREGULAR.format(regular=regular(d), columns=", ".join(RAW_COLUMNS))


def take_locality() -> str:
    return TAKE_LOCALITY.format(columns=", ".join(RAW_COLUMNS))


def insert_regular(d: Dialect) -> str:
    """The rows left in `stage_raw` (all regular), converted into `stage_sales`. Each level is
    fenced (OFFSET 0) so that it is computed once per row: a flattened query would parse
    every date again wherever the flags mention it."""
    fence = "OFFSET 0" if d.postgresql else "LIMIT -1 OFFSET 0"
    outer = ", ".join(
        "u.reasons = ''"
        if c == "is_market_sale"
        else "u.reasons"
        if c == "non_market_reasons"
        else f"u.{c}"
        for c in STAGE_COLUMNS
    )
    return f"""
INSERT INTO stage_sales ({", ".join(STAGE_COLUMNS)})
SELECT {outer}
FROM (
    SELECT t.*, {_reasons(d)} AS reasons
    FROM (
        SELECT {_converted(d)}
        FROM stage_raw r
        JOIN stage_locality_ids l ON l.name = r.c9 AND l.postcode = r.c10
        LEFT JOIN stage_districts dn ON dn.code = r.c0
        {fence}
    ) t
    {fence}
) u
"""


def clear_raw(d: Dialect) -> str:
    return "TRUNCATE stage_raw" if d.postgresql else "DELETE FROM stage_raw"
