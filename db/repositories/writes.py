"""Writes: one transaction each; the caller invalidates the cache after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db import tables
from db.engine import Database
from db.ingest.records import non_market_reasons
from db.records import PROPERTY_COLUMNS, SALE_COLUMNS, PropertyRecord, SaleRecord
from db.repositories import jobs, search, stats

SALES_RECORDED = "sales.recorded"
"""The job a new sale leaves in its own transaction (the outbox): app/alerts/tasks.py matches
it against saved searches and watches."""


class PropertyNotFound(LookupError):
    pass


class DuplicateSale(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class NewSale:
    property_id: int
    contract_date: date
    settlement_date: date | None
    price: int
    dealing_number: str
    sale_code: str | None
    interest_pct: float
    area_m2: float | None
    parcels_in_sale: int


async def record_sale(db: Database, sale: NewSale) -> SaleRecord:
    """Adds the sale; when it is the newest of the property's history (contract date, then
    id), the property's denormalised last sale follows it. A `sales.recorded` job commits
    with it (alerts)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    live = tables.properties.c.deleted_at.is_(None)
    async with db.begin() as conn:
        query = sa.select(tables.properties).where(tables.properties.c.id == sale.property_id, live)
        if db.is_postgresql:
            query = query.with_for_update()
        found = (await conn.execute(query)).mappings().first()
        if found is None:
            raise PropertyNotFound(sale.property_id)
        reasons = non_market_reasons(
            interest_pct=sale.interest_pct,
            price=sale.price,
            contract=sale.contract_date,
            settlement=sale.settlement_date,
            registered=now,
            parcels=sale.parcels_in_sale,
        )
        values: dict[str, Any] = {
            "property_id": sale.property_id,
            "locality_id": found["locality_id"],
            "is_strata": found["is_strata"],
            "district_code": found["district_code"] or "",
            "contract_date": sale.contract_date,
            "settlement_date": sale.settlement_date,
            "price": sale.price,
            "dealing_number": sale.dealing_number,
            "sale_code": sale.sale_code,
            "interest_pct": sale.interest_pct,
            "area_m2": sale.area_m2 if sale.area_m2 is not None else found["area_m2"],
            "zoning": found["zoning"],
            "nature": found["nature"],
            "primary_purpose": found["primary_purpose"],
            "parcels_in_sale": sale.parcels_in_sale,
            "is_market_sale": not reasons,
            "non_market_reasons": ",".join(reasons),
            "downloaded_at": now,
            "source_file": "api:recordSale",
        }
        try:
            async with conn.begin_nested():
                row = (
                    await conn.execute(
                        sa.insert(tables.sales).values(**values).returning(*SALE_COLUMNS)
                    )
                ).one()
        except IntegrityError:
            raise DuplicateSale(sale.dealing_number) from None
        if values["is_market_sale"]:
            # The locality's summarised statistics stop serving as this commits.
            await stats.bump_stats_versions(conn, [found["locality_id"]])
        await jobs.enqueue(conn, SALES_RECORDED, {"first_sale_id": row[0], "last_sale_id": row[0]})
        if sale.contract_date >= found["last_sale_date"]:
            await conn.execute(
                sa.update(tables.properties)
                .where(tables.properties.c.id == sale.property_id)
                .values(
                    last_sale_price=sale.price,
                    last_sale_date=sale.contract_date,
                    updated_at=datetime.now(UTC),
                )
            )
    return SaleRecord(*row)


UPDATABLE_PROPERTY_FIELDS = frozenset(
    {"zoning", "primary_purpose", "area_m2", "property_name", "nature"}
)


async def update_property(
    db: Database, property_id: int, changes: dict[str, Any]
) -> PropertyRecord:
    unknown = set(changes) - UPDATABLE_PROPERTY_FIELDS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    live = tables.properties.c.deleted_at.is_(None)
    async with db.begin() as conn:
        statement = (
            sa.update(tables.properties)
            .where(tables.properties.c.id == property_id, live)
            .values(**changes, updated_at=datetime.now(UTC))
            .returning(*PROPERTY_COLUMNS)
        )
        row = (await conn.execute(statement)).first()
        if row is not None and "property_name" in changes:
            # The name stands in for the street in the key of a property without one.
            await conn.execute(search.REFRESH_PROPERTY_KEY, {"id": property_id})
        watched = sa.select(tables.watches.c.id).where(tables.watches.c.property_id == property_id)
        if row is not None and (await conn.execute(watched.limit(1))).first() is not None:
            # A corrected area, zoning or use changes the estimate: the outbox asks for the
            # watches' check in the same transaction.
            await jobs.enqueue(conn, "estimates.check", {"property_ids": [property_id]})
    if row is None:
        raise PropertyNotFound(property_id)
    return PropertyRecord(*row)
