"""Webhook bodies: `{"type", "timestamp", "data"}`, made once per delivery and kept.

Ids are the API's global ids, so a receiver can ask the API about what it was told
(`node(id:)`, `property(id:)`). A body stays under MAX_BODY_BYTES: the longest lists in
`data` (a digest's matches) are cut until it fits, and say so (`truncated`, `total`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from app.ids import encode_global_id
from db.repositories.webhooks import EVENT_TYPES, AlertFacts, SaleFacts

MAX_BODY_BYTES = 20_000

# `<name>_id` / `<name>_ids` keys of an alert's data that hold our primary keys: written as
# global ids of this type.
_ID_TYPES = {
    "alert": "Alert",
    "property": "Property",
    "sale": "Sale",
    "saved_search": "SavedSearch",
    "search": "SavedSearch",
    "locality": "Locality",
}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def _with_global_ids(value: Any) -> Any:
    """The alert's own data (its owner writes snake_case keys and raw ids) as the API
    writes it: camelCase keys, global ids."""
    if isinstance(value, list):
        return [_with_global_ids(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _snake(str(key))
        for suffix, many in (("_ids", True), ("_id", False)):
            type_name = _ID_TYPES.get(name[: -len(suffix)]) if name.endswith(suffix) else None
            if type_name is None:
                continue
            if many and isinstance(item, list) and all(isinstance(i, int) for i in item):
                out[_camel(name)] = [encode_global_id(type_name, i) for i in item]
                break
            if not many and isinstance(item, int) and not isinstance(item, bool):
                out[_camel(name)] = encode_global_id(type_name, item)
                break
        else:
            out[_camel(name)] = _with_global_ids(item)
    return out


def _address(facts: AlertFacts | SaleFacts) -> str | None:
    """'12/34 KING ST, NEWTOWN NSW 2042', as the API's `Property.address` writes it."""
    if facts.property_id is None:
        return None
    number = "/".join(part for part in (facts.unit_number, facts.house_number) if part)
    street = " ".join(part for part in (number, facts.street_name) if part)
    street = street or facts.property_name or ""
    if facts.locality_name is not None:
        place = f"{facts.locality_name} {facts.state} {facts.postcode}"
    else:
        place = facts.postcode or ""
    return f"{street}, {place}" if street else place


def digest_sale_ids(facts: AlertFacts) -> list[int]:
    """The sales a digest alert lists (its data's `saleIds`), to be described in its body."""
    if facts.kind != "DIGEST" or not facts.data:
        return []
    try:
        data = json.loads(facts.data)
    except ValueError:
        return []
    ids = data.get("saleIds") if isinstance(data, dict) else None
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]


def _match(sale: SaleFacts) -> dict[str, Any]:
    return {
        "sale": {
            "id": encode_global_id("Sale", sale.sale_id),
            "price": sale.price,
            "contractDate": sale.contract_date.isoformat(),
        },
        "property": {
            "id": encode_global_id("Property", sale.property_id),
            "address": _address(sale),
        },
    }


def _data(facts: AlertFacts, sales: Mapping[int, SaleFacts]) -> dict[str, Any]:
    data: dict[str, Any] = {"alertId": encode_global_id("Alert", facts.alert_id)}
    if facts.saved_search_id is not None:
        data["savedSearch"] = {
            "id": encode_global_id("SavedSearch", facts.saved_search_id),
            "name": facts.saved_search_name,
        }
    if facts.property_id is not None:
        data["property"] = {
            "id": encode_global_id("Property", facts.property_id),
            "address": _address(facts),
        }
    if facts.sale_id is not None:
        data["sale"] = {
            "id": encode_global_id("Sale", facts.sale_id),
            "price": facts.price,
            "contractDate": facts.contract_date.isoformat() if facts.contract_date else None,
        }
    if facts.data:
        try:
            extra = json.loads(facts.data)
        except ValueError:
            extra = None
        if isinstance(extra, dict):
            key = "estimate" if facts.kind == "ESTIMATE_CHANGED" else "details"
            details = _with_global_ids(extra)
            if facts.kind == "DIGEST":
                # The digest's sales described (in its order), not just named.
                ids = digest_sale_ids(facts)
                details.pop("saleIds", None)
                data.update({k: v for k, v in details.items() if k not in data})
                data["matches"] = [_match(sales[i]) for i in ids if i in sales]
            else:
                data[key] = details
    return data


def _encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def _longest_list(value: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], int]:
    best: tuple[tuple[Any, ...], int] = ((), 0)
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        if len(value) > 1:
            best = (path, len(value))
        items = enumerate(value)
    else:
        return best
    for key, item in items:
        found = _longest_list(item, (*path, key))
        if found[1] > best[1]:
            best = found
    return best


def _fit(body: dict[str, Any]) -> bytes:
    """The body, its longest lists halved until it is under MAX_BODY_BYTES."""
    encoded = _encode(body)
    while len(encoded) >= MAX_BODY_BYTES:
        path, length = _longest_list(body["data"])
        if length <= 1:
            # Nothing left to cut: keep what identifies the event.
            body["data"] = {"alertId": body["data"]["alertId"], "truncated": True}
            return _encode(body)
        parent: Any = body["data"]
        for key in path[:-1]:
            parent = parent[key]
        owner = parent
        name = path[-1]
        items = owner[name]
        owner[name] = items[: length // 2]
        # The first cut of a list says how long it was.
        if isinstance(owner, dict):
            owner.setdefault(f"{name}Total", length)
        body["data"]["truncated"] = True
        encoded = _encode(body)
    return encoded


def build_body(facts: AlertFacts, sales: Mapping[int, SaleFacts] | None = None) -> str:
    """The body of the alert's event; `sales`: the digest's sales (`digest_sale_ids`)."""
    body = {
        "type": EVENT_TYPES[facts.kind],
        "timestamp": facts.created_at.isoformat().replace("+00:00", "Z"),
        "data": _data(facts, sales or {}),
    }
    return _fit(body).decode()
