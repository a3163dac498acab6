"""What training reads from the database: every market sale, as numpy columns.

The rows come from db/repositories/training_data.py (every market sale of a live property
with its street and house number, streamed in partitions so 4.7 million rows never exist as
Python row objects all at once; the localities with their centroid and district). Here they
become columns: text becomes integer codes into a vocabulary (`-1` for NULL/blank), dates
become proleptic ordinals. Works on PostgreSQL (asyncpg) and SQLite (aiosqlite) alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import normalise_database_url
from db.repositories import training_data

PARTITION_ROWS = 100_000


@dataclass(slots=True)
class TrainingData:
    """Market sales (one row each) plus the locality table. Codes index the vocabularies."""

    property_id: NDArray[np.int64]
    locality_id: NDArray[np.int64]
    is_strata: NDArray[np.bool_]
    day: NDArray[np.int64]  # contract date, date.toordinal()
    price: NDArray[np.float64]
    area_m2: NDArray[np.float64]  # NaN when unknown
    zoning: NDArray[np.int32]
    nature: NDArray[np.int32]
    purpose: NDArray[np.int32]
    district: NDArray[np.int32]  # the sale's district code
    street: NDArray[np.int32]
    house: NDArray[np.int32]
    zoning_vocab: list[str]
    nature_vocab: list[str]
    purpose_vocab: list[str]
    district_vocab: list[str]
    street_vocab: list[str]
    house_vocab: list[str]
    # localities (one row each)
    loc_id: NDArray[np.int64]
    loc_latitude: NDArray[np.float64]
    loc_longitude: NDArray[np.float64]
    loc_district: list[str | None]

    def __len__(self) -> int:
        return len(self.price)

    def save(self, path: str | Path) -> None:
        """Cache to a local file (pickle) so iterations do not re-read the database."""
        with open(path, "wb") as fh:
            pickle.dump({f.name: getattr(self, f.name) for f in fields(self)}, fh, protocol=5)

    @classmethod
    def load(cls, path: str | Path) -> TrainingData:
        with open(path, "rb") as fh:
            return cls(**pickle.load(fh))

    def subset(self, mask: NDArray[np.bool_]) -> TrainingData:
        """The rows under `mask` (vocabularies and localities unchanged)."""
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and not f.name.startswith("loc_"):
                value = value[mask]
            values[f.name] = value
        return TrainingData(**values)


class _Vocabulary:
    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.words: list[str] = []

    def encode(self, column: Iterable[str | None]) -> NDArray[np.int32]:
        codes = self.codes
        words = self.words
        out: list[int] = []
        append = out.append
        for value in column:
            if value is None:
                append(-1)
                continue
            text = value.strip().upper()
            if not text:
                append(-1)
                continue
            code = codes.get(text)
            if code is None:
                code = codes[text] = len(words)
                words.append(text)
            append(code)
        return np.asarray(out, dtype=np.int32)


def _float_column(values: Sequence[Any]) -> NDArray[np.float64]:
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


async def load_training_sales(engine_or_url: AsyncEngine | str) -> TrainingData:
    """Every live market sale of our schema, with its property's street and its locality."""
    owned = isinstance(engine_or_url, str)
    engine = (
        create_async_engine(normalise_database_url(engine_or_url))
        if isinstance(engine_or_url, str)
        else engine_or_url
    )
    vocab = {
        name: _Vocabulary()
        for name in ("zoning", "nature", "purpose", "district", "street", "house")
    }
    parts: dict[str, list[NDArray[Any]]] = {
        name: []
        for name in (
            "property_id", "locality_id", "is_strata", "day", "price", "area_m2",
            "zoning", "nature", "purpose", "district", "street", "house",
        )
    }  # fmt: skip
    try:
        loc_rows = await training_data.localities(engine)
        partitions = training_data.market_sale_partitions(engine, partition_rows=PARTITION_ROWS)
        async with contextlib.aclosing(partitions):
            async for rows in partitions:
                (pid, lid, strata, cdate, price, area, zoning, nature, purpose, district,
                 street, house) = zip(*rows, strict=True)  # fmt: skip
                parts["property_id"].append(np.asarray(pid, dtype=np.int64))
                parts["locality_id"].append(np.asarray(lid, dtype=np.int64))
                parts["is_strata"].append(np.asarray(strata, dtype=np.bool_))
                parts["day"].append(np.asarray([d.toordinal() for d in cdate], dtype=np.int64))
                parts["price"].append(np.asarray(price, dtype=np.float64))
                parts["area_m2"].append(_float_column(area))
                parts["zoning"].append(vocab["zoning"].encode(zoning))
                parts["nature"].append(vocab["nature"].encode(nature))
                parts["purpose"].append(vocab["purpose"].encode(purpose))
                parts["district"].append(vocab["district"].encode(district))
                parts["street"].append(vocab["street"].encode(street))
                parts["house"].append(vocab["house"].encode(house))
    finally:
        if owned:
            await engine.dispose()

    def joined(name: str, dtype: Any) -> NDArray[Any]:
        chunks = parts[name]
        return np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype=dtype)

    return TrainingData(
        property_id=joined("property_id", np.int64),
        locality_id=joined("locality_id", np.int64),
        is_strata=joined("is_strata", np.bool_),
        day=joined("day", np.int64),
        price=joined("price", np.float64),
        area_m2=joined("area_m2", np.float64),
        zoning=joined("zoning", np.int32),
        nature=joined("nature", np.int32),
        purpose=joined("purpose", np.int32),
        district=joined("district", np.int32),
        street=joined("street", np.int32),
        house=joined("house", np.int32),
        zoning_vocab=vocab["zoning"].words,
        nature_vocab=vocab["nature"].words,
        purpose_vocab=vocab["purpose"].words,
        district_vocab=vocab["district"].words,
        street_vocab=vocab["street"].words,
        house_vocab=vocab["house"].words,
        loc_id=np.asarray([r[0] for r in loc_rows], dtype=np.int64),
        loc_latitude=_float_column([r[1] for r in loc_rows]),
        loc_longitude=_float_column([r[2] for r in loc_rows]),
        loc_district=[(r[3] or None) for r in loc_rows],
    )


def load_training_sales_sync(database_url: str, *, cache: str | Path | None = None) -> TrainingData:
    """`load_training_sales` from synchronous code; with `cache`, read/write that file."""
    if cache is not None and Path(cache).exists():
        return TrainingData.load(cache)
    data = asyncio.run(load_training_sales(database_url))
    if cache is not None:
        data.save(cache)
    return data
