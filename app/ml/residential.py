"""Which market sales are residential: the model's training and validation targets, and the
sales its price levels and street residuals are built from (all market sales, of any use,
still count as a property's previous sales). See docs/price-model.md, "Which sales"."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from app.ml.data import TrainingData

RESIDENTIAL_PURPOSES = frozenset(
    {
        "RESIDENCE",
        "RESIDENTIAL",
        "HOME UNIT",
        "UNIT",
        "HOUSE",
        "FLAT",
        "FLATS",
        "TOWNHOUSE",
        "TOWN HOUSE",
        "VILLA",
        "DUPLEX",
        "DWELLING",
        "COTTAGE",
        "SEMI",
        "TERRACE",
        "STRATA UNIT",
        "HOME UNITS",
        "UNITS",
        "TOWNHOUSES",
    }
)


def is_residential(data: TrainingData) -> NDArray[np.bool_]:
    """Residential rule: nature R (residence) with purpose RESIDENCE or blank, or any non-
    vacant nature whose purpose names a dwelling (HOME UNIT, HOUSE, UNIT, ...)."""
    nature = np.asarray([*data.nature_vocab, ""], dtype=object)[data.nature]
    purpose_words = [*data.purpose_vocab, ""]
    dwelling = np.asarray([w in RESIDENTIAL_PURPOSES for w in purpose_words])[data.purpose]
    blank_purpose = data.purpose < 0
    r = nature == "R"
    vacant = nature == "V"
    return np.asarray((r & (dwelling | blank_purpose)) | (~vacant & dwelling), dtype=np.bool_)
