"""A valid PSI CSV row (as `csv.DictReader` gives it), for ingest tests to vary."""

from __future__ import annotations


def good_row(**overrides: str) -> dict[str, str]:
    row = {
        "district_code": "206",
        "property_id": "990001",
        "download_datetime": "20240108 01:07",
        "house_number": "1",
        "street_name": "TEST ST",
        "locality": "TEMPE",
        "postcode": "2044",
        "area": "300",
        "area_type": "M",
        "contract_date": "2023-12-01",
        "settlement_date": "2024-01-05",
        "purchase_price": "1500000",
        "nature_of_property": "R",
        "interest_of_sale_pct": "0",
        "dealing_number": "AT000001",
        "parcels_in_sale": "1",
        "source_file": "test.csv",
    }
    return {**row, **overrides}
