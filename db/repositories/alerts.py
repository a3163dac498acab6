"""Alerts: the record, and (issue 14) saved searches, watches and set-based matching."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    user_id: int
    kind: str  # SALE_MATCHED | PROPERTY_SOLD | ESTIMATE_CHANGED | DIGEST
    created_at: datetime
    read_at: datetime | None
    saved_search_id: int | None
    watch_id: int | None
    property_id: int | None
    sale_id: int | None
    data: str | None  # JSON text: a digest's matches, an estimate's change


ALERT_COLUMNS = (
    "id, user_id, kind, created_at, read_at, saved_search_id, watch_id, property_id, sale_id, data"
)
"""The columns `alert_from_row` reads, in its order (for hand-written SELECTs)."""


def alert_from_row(row: Any) -> AlertRecord:
    """From a row of the `alerts` table (a mapping or a tuple in ALERT_COLUMNS order)."""
    if hasattr(row, "_mapping"):
        row = row._mapping
    if hasattr(row, "keys"):
        return AlertRecord(
            row["id"],
            row["user_id"],
            row["kind"],
            row["created_at"],
            row["read_at"],
            row["saved_search_id"],
            row["watch_id"],
            row["property_id"],
            row["sale_id"],
            row["data"],
        )
    return AlertRecord(*row)
