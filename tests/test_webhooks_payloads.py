"""Webhook bodies (app/webhooks/payloads.py): global ids, the useful fields of each kind,
and the 20 kB bound (a digest's list is cut, and says so)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from app.ids import encode_global_id
from app.webhooks.payloads import MAX_BODY_BYTES, build_body, digest_sale_ids
from db.repositories.webhooks import AlertFacts, SaleFacts

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _facts(kind: str, data: str | None = None, **values: object) -> AlertFacts:
    fields: dict[str, object] = {
        "alert_id": 7,
        "kind": kind,
        "created_at": AT,
        "data": data,
        "saved_search_id": None,
        "saved_search_name": None,
        "property_id": None,
        "unit_number": None,
        "house_number": None,
        "street_name": None,
        "property_name": None,
        "postcode": None,
        "locality_name": None,
        "state": None,
        "sale_id": None,
        "price": None,
        "contract_date": None,
        **values,
    }
    return AlertFacts(**fields)  # type: ignore[arg-type]


def _sale(sale_id: int, street: str = "KING ST") -> SaleFacts:
    return SaleFacts(
        sale_id,
        1_000_000 + sale_id,
        date(2026, 11, 30),
        100 + sale_id,
        "2",
        str(sale_id),
        street,
        None,
        "2044",
        "TEMPE",
        "NSW",
    )


def test_property_sold_body() -> None:
    facts = _facts(
        "PROPERTY_SOLD",
        property_id=5,
        unit_number="2",
        house_number="14",
        street_name="UNWINS BRIDGE RD",
        postcode="2044",
        locality_name="TEMPE",
        state="NSW",
        sale_id=9,
        price=1_250_000,
        contract_date=date(2026, 11, 28),
    )
    body = json.loads(build_body(facts))
    assert body == {
        "type": "property.sold",
        "timestamp": "2026-12-01T09:30:00Z",
        "data": {
            "alertId": encode_global_id("Alert", 7),
            "property": {
                "id": encode_global_id("Property", 5),
                "address": "2/14 UNWINS BRIDGE RD, TEMPE NSW 2044",
            },
            "sale": {
                "id": encode_global_id("Sale", 9),
                "price": 1_250_000,
                "contractDate": "2026-11-28",
            },
        },
    }


def test_estimate_changed_carries_the_change() -> None:
    change = {"previous": 1_000_000, "current": 1_080_000, "changePct": 8.0, "modelVersion": 3}
    body = json.loads(build_body(_facts("ESTIMATE_CHANGED", json.dumps(change), property_id=5)))
    assert body["type"] == "estimate.changed"
    assert body["data"]["estimate"] == change
    assert body["data"]["property"]["id"] == encode_global_id("Property", 5)


def test_digest_lists_its_sales_and_stays_under_20_kb() -> None:
    ids = list(range(1, 51))
    data = json.dumps({"period": "2026-W48", "matchCount": 75, "saleIds": ids})
    facts = _facts("DIGEST", data, saved_search_id=3, saved_search_name="Tempe units")
    assert digest_sale_ids(facts) == ids
    small = json.loads(build_body(facts, {i: _sale(i) for i in ids}))
    assert small["type"] == "alerts.digest"
    assert small["data"]["savedSearch"] == {
        "id": encode_global_id("SavedSearch", 3),
        "name": "Tempe units",
    }
    assert small["data"]["period"] == "2026-W48"
    assert small["data"]["matchCount"] == 75
    assert [m["sale"]["id"] for m in small["data"]["matches"]] == [
        encode_global_id("Sale", i) for i in ids
    ]
    assert small["data"]["matches"][0]["property"]["address"] == "2/1 KING ST, TEMPE NSW 2044"
    assert "truncated" not in small["data"]
    # Long addresses: the list is cut until the body fits.
    encoded = build_body(facts, {i: _sale(i, "X" * 800) for i in ids})
    assert len(encoded.encode()) < MAX_BODY_BYTES
    big = json.loads(encoded)
    assert big["data"]["truncated"] is True
    assert big["data"]["matchesTotal"] == 50
    assert 0 < len(big["data"]["matches"]) < 50
    assert big["data"]["matches"][0]["sale"]["id"] == encode_global_id("Sale", 1)


def test_raw_ids_in_data_become_global_ids() -> None:
    data = json.dumps({"watch_note": "x", "sale_id": 4, "propertyIds": [1, 2]})
    body = json.loads(build_body(_facts("PROPERTY_SOLD", data)))
    assert body["data"]["details"] == {
        "watchNote": "x",
        "saleId": encode_global_id("Sale", 4),
        "propertyIds": [encode_global_id("Property", 1), encode_global_id("Property", 2)],
    }
