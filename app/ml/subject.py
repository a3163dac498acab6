"""What a prediction is asked about (Subject) and what it answers (Estimate).

These are the types the rest of the service speaks to the model in; they hold plain values
(no codes, no arrays) so resolvers and loaders build them without knowing the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from app.ml.data import TrainingData


@dataclass(frozen=True, slots=True)
class Subject:
    """What we know about a property at prediction time."""

    locality_id: int | None
    locality_name: str
    postcode: str
    district_code: str | None
    latitude: float | None
    longitude: float | None
    is_strata: bool
    area_m2: float | None
    zoning: str | None
    nature: str | None
    primary_purpose: str | None
    street_name: str | None
    previous_sales: tuple[tuple[date, int], ...] = ()
    """The property's own market sales strictly before asOf, (contract_date, price), newest
    last. Sales on or after asOf are ignored."""
    house_number: str | None = None
    """Optional: with a strata subject, selects the building's residual."""


@dataclass(frozen=True, slots=True)
class Estimate:
    price: int
    low: int
    high: int
    as_of: date


def subject_of_sale(
    data: TrainingData,
    i: int,
    earlier: Sequence[int] | NDArray[np.intp],
    *,
    district_code: str | None = None,
) -> Subject:
    """Sale row `i` of `data` as a subject, with the rows `earlier` (oldest first) as its
    previous sales: how the bench and the tests pose known sales to `predict`."""

    def word(vocabulary: list[str], code: int) -> str | None:
        return vocabulary[code] if code >= 0 else None

    area = float(data.area_m2[i])
    return Subject(
        locality_id=int(data.locality_id[i]),
        locality_name="",
        postcode="",
        district_code=district_code,
        latitude=None,
        longitude=None,
        is_strata=bool(data.is_strata[i]),
        area_m2=None if np.isnan(area) else area,
        zoning=word(data.zoning_vocab, int(data.zoning[i])),
        nature=word(data.nature_vocab, int(data.nature[i])),
        primary_purpose=word(data.purpose_vocab, int(data.purpose[i])),
        street_name=word(data.street_vocab, int(data.street[i])),
        previous_sales=tuple(
            (date.fromordinal(int(data.day[j])), int(data.price[j])) for j in earlier
        ),
    )
