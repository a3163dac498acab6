"""An independent reading of the PSI CSV files, to check what the API returns.

Deliberately written without the project's ingest code: csv.DictReader over the files, the
documented cleaning rules (README of ../shared/data), and the statistics module. If the loader
and this disagree, one of them misreads the data.
"""

from __future__ import annotations

import csv
import gzip
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class RefSale:
    vg_property_id: int
    strata_lot: str
    dealing_number: str
    locality: tuple[str, str]
    contract_date: date
    price: int
    area_m2: float | None
    is_market: bool
    downloaded: str


@dataclass
class Reference:
    sales: list[RefSale] = field(default_factory=list)
    rows_in_slice: int = 0
    rejected: int = 0

    def by_property(self) -> dict[tuple[int, str], list[RefSale]]:
        grouped: dict[tuple[int, str], list[RefSale]] = defaultdict(list)
        for sale in self.sales:
            grouped[(sale.vg_property_id, sale.strata_lot)].append(sale)
        return grouped

    def property_locality(self) -> dict[tuple[int, str], tuple[str, str]]:
        """A property's locality is that of its most recently extracted record."""
        return {
            key: max(sales, key=lambda s: (s.downloaded, s.contract_date)).locality
            for key, sales in self.by_property().items()
        }

    def market_prices(
        self,
        locality: tuple[str, str],
        *,
        date_from: date | None = None,
        date_to: date | None = None,
        strata: bool | None = None,
    ) -> list[RefSale]:
        return [
            s
            for s in self.sales
            if s.is_market
            and s.locality == locality
            and (date_from is None or s.contract_date >= date_from)
            and (date_to is None or s.contract_date <= date_to)
            and (strata is None or (s.strata_lot != "") == strata)
        ]


def quartiles(values: Iterable[float]) -> tuple[float, float, float] | None:
    ordered = sorted(values)
    if len(ordered) < 2:
        return (ordered[0],) * 3 if ordered else None
    q1, q2, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return q1, q2, q3


def read_reference(
    files: Iterable[Path], localities: set[str], *, property_ids: set[str] | None = None
) -> Reference:
    """The rows of these localities (by name), plus every row of these properties."""
    reference = Reference()
    latest: dict[tuple[int, str, str], tuple[str, RefSale]] = {}
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["locality"].upper() not in localities and (
                    property_ids is None or row["property_id"] not in property_ids
                ):
                    continue
                reference.rows_in_slice += 1
                if not row["property_id"] or not row["contract_date"] or not row["purchase_price"]:
                    reference.rejected += 1
                    continue
                contract = date.fromisoformat(row["contract_date"])
                downloaded = row["download_datetime"]
                registered = date(int(downloaded[:4]), int(downloaded[4:6]), int(downloaded[6:8]))
                is_market = (
                    row["part_interest_flag"] == "0"
                    and row["non_market_price_flag"] == "0"
                    and row["date_error_flag"] == "0"
                    and row["parcels_in_sale"] == "1"
                    and contract <= registered
                )
                sale = RefSale(
                    vg_property_id=int(row["property_id"]),
                    strata_lot=row["strata_lot_number"],
                    dealing_number=row["dealing_number"],
                    locality=(row["locality"].upper(), row["postcode"]),
                    contract_date=contract,
                    price=int(row["purchase_price"]),
                    area_m2=float(row["area_m2"]) if row["area_m2"] else None,
                    is_market=is_market,
                    downloaded=downloaded,
                )
                key = (sale.vg_property_id, sale.strata_lot, sale.dealing_number)
                if key not in latest or latest[key][0] < downloaded:
                    latest[key] = (downloaded, sale)
    reference.sales = [sale for _, sale in latest.values()]
    return reference
