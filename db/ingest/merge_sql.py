"""The set-based statements that merge one staged chunk into the real tables.

Written once for both dialects: PostgreSQL and SQLite (3.33+) share INSERT .. SELECT ..
ON CONFLICT, UPDATE .. FROM and window functions. (`WHERE rn = 1` / `WHERE true` also keep
SQLite's parser from reading ON CONFLICT as part of a join.)

Each property row is written once per chunk that mentions it: new properties are inserted with
their newest sale already in place; only properties that existed before the chunk get the
last-sale refresh.
"""

from __future__ import annotations

from db.ingest.records import STAGE_COLUMNS
from db.search_key import property_key_sql

_TYPES = {
    "vg_property_id": "INTEGER",
    "downloaded_at": "TIMESTAMP",
    "locality_id": "BIGINT",
    "area_m2": "DOUBLE PRECISION",
    "contract_date": "DATE",
    "settlement_date": "DATE",
    "price": "BIGINT",
    "interest_pct": "DOUBLE PRECISION",
    "parcels_in_sale": "INTEGER",
    "is_market_sale": "BOOLEAN",
}
_STAGE_DEFINITION = ", ".join(f"{name} {_TYPES.get(name, 'TEXT')}" for name in STAGE_COLUMNS)
_STAGE_LIST = ", ".join(STAGE_COLUMNS)

CREATE_TEMPORARY_TABLES = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS stage_sales ({_STAGE_DEFINITION})",
    f"CREATE TEMPORARY TABLE IF NOT EXISTS stage_dedup ({_STAGE_DEFINITION})",
    "CREATE TEMPORARY TABLE IF NOT EXISTS stage_existing (id BIGINT)",
    """CREATE TEMPORARY TABLE IF NOT EXISTS stage_keyed (
        property_id BIGINT, locality_id BIGINT, is_strata BOOLEAN, district_code TEXT,
        contract_date DATE, settlement_date DATE, price BIGINT, dealing_number TEXT,
        sale_code TEXT, interest_pct DOUBLE PRECISION, area_m2 DOUBLE PRECISION, zoning TEXT,
        nature TEXT, primary_purpose TEXT, parcels_in_sale INTEGER, is_market_sale BOOLEAN,
        non_market_reasons TEXT, downloaded_at TIMESTAMP, source_file TEXT
    )""",
)

CLEAR_STAGE = tuple(
    f"DELETE FROM {table}"
    for table in ("stage_sales", "stage_dedup", "stage_existing", "stage_keyed")
)

# One row per (property, dealing): a sale restated within the chunk keeps its latest extract.
DEDUPLICATE = f"""
INSERT INTO stage_dedup ({_STAGE_LIST})
SELECT {_STAGE_LIST} FROM (
    SELECT s.*, ROW_NUMBER() OVER (
        PARTITION BY vg_property_id, strata_lot, dealing_number ORDER BY downloaded_at DESC
    ) AS rn
    FROM stage_sales s
) ranked
WHERE rn = 1
"""

REMEMBER_EXISTING = """
INSERT INTO stage_existing (id)
SELECT DISTINCT p.id
FROM properties p
JOIN stage_dedup s ON p.vg_property_id = s.vg_property_id AND p.strata_lot = s.strata_lot
"""

# The most recently extracted record describes the property (the VG restates records with
# corrected addresses, areas and zonings); a new property's last sale is its newest staged
# sale, ties broken by dealing number, the order in which INSERT_SALES numbers them.
UPSERT_PROPERTIES = f"""
INSERT INTO properties (
    vg_property_id, strata_lot, district_code, district, property_name, unit_number,
    house_number, street_name, locality_id, postcode, area_m2, zoning, nature, primary_purpose,
    is_strata, latitude, longitude, last_sale_price, last_sale_date, source_downloaded_at,
    search_key
)
SELECT latest.vg_property_id, latest.strata_lot, latest.district_code, latest.district,
    latest.property_name, latest.unit_number, latest.house_number, latest.street_name,
    latest.locality_id, latest.postcode, latest.area_m2, latest.zoning, latest.nature,
    latest.primary_purpose, latest.strata_lot <> '', l.latitude, l.longitude,
    latest.newest_price, latest.newest_date, latest.downloaded_at,
    {property_key_sql("latest", "l")}
FROM (
    SELECT s.*,
        ROW_NUMBER() OVER (
            PARTITION BY vg_property_id, strata_lot ORDER BY downloaded_at DESC, contract_date DESC
        ) AS rn,
        FIRST_VALUE(price) OVER newest AS newest_price,
        FIRST_VALUE(contract_date) OVER newest AS newest_date
    FROM stage_dedup s
    WINDOW newest AS (
        PARTITION BY vg_property_id, strata_lot ORDER BY contract_date DESC, dealing_number DESC
    )
) latest
JOIN localities l ON l.id = latest.locality_id
WHERE latest.rn = 1
ON CONFLICT (vg_property_id, strata_lot) DO UPDATE SET
    district_code = excluded.district_code, district = excluded.district,
    property_name = excluded.property_name, unit_number = excluded.unit_number,
    house_number = excluded.house_number, street_name = excluded.street_name,
    locality_id = excluded.locality_id, postcode = excluded.postcode,
    area_m2 = excluded.area_m2, zoning = excluded.zoning, nature = excluded.nature,
    primary_purpose = excluded.primary_purpose, latitude = excluded.latitude,
    longitude = excluded.longitude, source_downloaded_at = excluded.source_downloaded_at,
    search_key = excluded.search_key, updated_at = CURRENT_TIMESTAMP
WHERE properties.source_downloaded_at < excluded.source_downloaded_at
"""

SALE_COLUMNS = (
    "property_id, locality_id, is_strata, district_code, contract_date, settlement_date, price,"
    " dealing_number, sale_code, interest_pct, area_m2, zoning, nature, primary_purpose,"
    " parcels_in_sale, is_market_sale, non_market_reasons, downloaded_at, source_file"
)

FILL_KEYED = f"""
INSERT INTO stage_keyed ({SALE_COLUMNS})
SELECT p.id, s.locality_id, s.strata_lot <> '', s.district_code, s.contract_date,
    s.settlement_date, s.price, s.dealing_number, s.sale_code, s.interest_pct, s.area_m2,
    s.zoning, s.nature, s.primary_purpose, s.parcels_in_sale, s.is_market_sale,
    s.non_market_reasons, s.downloaded_at, s.source_file
FROM stage_dedup s
JOIN properties p ON p.vg_property_id = s.vg_property_id AND p.strata_lot = s.strata_lot
"""

# A newer extract of a sale we hold replaces it (the VG republishes corrected records).
RESTATE_SALES = """
UPDATE sales SET
    locality_id = k.locality_id, district_code = k.district_code,
    contract_date = k.contract_date, settlement_date = k.settlement_date, price = k.price,
    sale_code = k.sale_code, interest_pct = k.interest_pct, area_m2 = k.area_m2,
    zoning = k.zoning, nature = k.nature, primary_purpose = k.primary_purpose,
    parcels_in_sale = k.parcels_in_sale, is_market_sale = k.is_market_sale,
    non_market_reasons = k.non_market_reasons, downloaded_at = k.downloaded_at,
    source_file = k.source_file
FROM stage_keyed k
WHERE sales.property_id = k.property_id AND sales.dealing_number = k.dealing_number
    AND sales.downloaded_at < k.downloaded_at
"""

# Ids follow (contract date, dealing number; the parcels of one dealing by property), so
# "newest first, then highest id" is the same order as UPSERT_PROPERTIES' choice of a new
# property's last sale.
INSERT_SALES = f"""
INSERT INTO sales ({SALE_COLUMNS})
SELECT {SALE_COLUMNS} FROM stage_keyed WHERE true
ORDER BY contract_date, dealing_number, property_id
ON CONFLICT (property_id, dealing_number) DO NOTHING
"""

# Properties that existed before this chunk: their newest sale may have changed.
REFRESH_LAST_SALE = """
UPDATE properties SET
    last_sale_price = newest.price, last_sale_date = newest.contract_date,
    updated_at = CURRENT_TIMESTAMP
FROM (
    SELECT property_id, price, contract_date, ROW_NUMBER() OVER (
        PARTITION BY property_id ORDER BY contract_date DESC, id DESC
    ) AS rn
    FROM sales
    WHERE property_id IN (SELECT id FROM stage_existing)
) newest
WHERE newest.rn = 1 AND properties.id = newest.property_id
    AND (properties.last_sale_price <> newest.price
         OR properties.last_sale_date <> newest.contract_date)
"""

# A locality takes the district of its most recently extracted sale whose district code has a
# name (codes retired before 2019 have none; of two extracted in the same minute, the higher
# code: a fixed choice, not one that depends on the order rows were staged in). Files load
# oldest first, so after the full history every locality carries its current district, e.g.
# INNER WEST, not MARRICKVILLE.
SET_LOCALITY_DISTRICTS = """
UPDATE localities SET district_code = latest.district_code, district = latest.district,
    updated_at = CURRENT_TIMESTAMP
FROM (
    SELECT locality_id, district_code, district, ROW_NUMBER() OVER (
        PARTITION BY locality_id ORDER BY downloaded_at DESC, district_code DESC
    ) AS rn
    FROM stage_dedup
    WHERE district IS NOT NULL
) latest
WHERE latest.rn = 1 AND localities.id = latest.locality_id
    AND (localities.district IS NULL OR localities.district <> latest.district)
"""

MERGE_STEPS = (
    DEDUPLICATE,
    REMEMBER_EXISTING,
    UPSERT_PROPERTIES,
    FILL_KEYED,
)

# Into empty tables without their unique constraints (a first load on PostgreSQL): the same
# rows, inserted plainly (the staged rows are already one per key), and the sales straight
# from the deduplicated rows: nothing to restate, so no keyed copy of them.
INSERT_PROPERTIES_INTO_EMPTY = UPSERT_PROPERTIES[: UPSERT_PROPERTIES.index("ON CONFLICT")]
INSERT_SALES_INTO_EMPTY = f"""
INSERT INTO sales ({SALE_COLUMNS})
{FILL_KEYED[FILL_KEYED.index("SELECT") :]}
ORDER BY s.contract_date, s.dealing_number, p.id
"""
INTO_EMPTY_STEPS = (DEDUPLICATE, INSERT_PROPERTIES_INTO_EMPTY)

BUMP_STAGED_STATS_VERSIONS = """
UPDATE localities SET stats_version = stats_version + 1
WHERE id IN (
    SELECT locality_id FROM stage_dedup
    UNION
    SELECT sales.locality_id FROM sales
    JOIN stage_keyed k
        ON sales.property_id = k.property_id AND sales.dealing_number = k.dealing_number
)
"""
"""Run by the merge (db/ingest/loader.py) in its transaction, after FILL_KEYED and before
RESTATE_SALES: the localities of the batch's sales, and the localities the sales it may
restate are in now (a restatement can move a sale), get a new stats version, so their
summaries (db/repositories/stats.py) are recomputed. Both dialects."""
