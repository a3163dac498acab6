"""How well a trained model did on its held-out weeks, and the baseline it must beat.

`ValidationMetrics` is stored with the model (in the artifact, and as JSON in the
registry's `metrics` column), so its field names are part of the stored format.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from app.ml.features import F64, I64

if TYPE_CHECKING:  # an annotation only: model.py (and so the artifact) need not load the design
    from app.ml.design import Prepared


@dataclass(frozen=True, slots=True)
class ValidationMetrics:
    """Figures of the held-out weeks (the served estimators are the validated ones)."""

    mdape: float
    within_10: float
    within_20: float
    coverage: float
    n_validation: int
    n_train: int
    baseline_mdape: float
    n_calibration: int = 0
    train_to: date | None = None
    calibration_from: date | None = None
    validation_from: date | None = None
    validation_to: date | None = None
    training_seconds: float = 0.0
    mdape_by_segment: dict[str, float] = field(default_factory=dict)
    classes: list[dict[str, Any]] = field(default_factory=list)
    """Per caller class (app/ml/classes.py) on the validation weeks: {name, sales, mdape,
    coverage, calibration_sales, merged_into}; sales are the eligible rows, predicted as
    that class is served. Empty for models trained before the classes."""


def _setstate(self: ValidationMetrics, state: list[Any]) -> None:
    """Unpickling: fields added since an artifact was stored take their defaults (a frozen
    slots dataclass pickles its field values as a list, in field order)."""
    names = fields(ValidationMetrics)
    for f, value in zip(names, state, strict=False):
        object.__setattr__(self, f.name, value)
    for f in names[len(state) :]:
        if f.default_factory is not MISSING:
            object.__setattr__(self, f.name, f.default_factory())
        else:
            object.__setattr__(self, f.name, f.default)


setattr(ValidationMetrics, "__setstate__", _setstate)  # noqa: B010 (dataclass sets its own)


def scores(pred: F64, price: F64, low: F64, high: F64) -> dict[str, float]:
    """MdAPE, the shares within 10% and 20%, and the interval's coverage (NaN when empty)."""
    ape = np.abs(pred - price) / price
    return {
        "mdape": float(np.median(ape)) if len(ape) else float("nan"),
        "within_10": float(np.mean(ape <= 0.10)) if len(ape) else float("nan"),
        "within_20": float(np.mean(ape <= 0.20)) if len(ape) else float("nan"),
        "coverage": float(np.mean((price >= low) & (price <= high))) if len(ape) else float("nan"),
    }


def baseline_prices(p: Prepared, idx: I64, cutoff_day: int) -> F64:
    """Median price of the locality x strata over the 12 months before the cutoff (else the
    district x strata, else the strata): what the model is compared with."""
    d = p.data
    known = np.flatnonzero(p.residential & (d.day < cutoff_day) & (d.day >= cutoff_day - 365))
    out = np.full(len(idx), np.nan)
    s_known = d.is_strata[known].astype(np.int64)
    s_idx = d.is_strata[idx].astype(np.int64)
    for known_key, query_key in (
        (np.zeros(len(known), dtype=np.int64) * 2 + s_known, s_idx),
        (p.dist[known] * 2 + s_known, p.dist[idx] * 2 + s_idx),
        (p.loc[known] * 2 + s_known, p.loc[idx] * 2 + s_idx),
    ):
        order = np.lexsort((d.price[known], known_key))
        keys = known_key[order]
        prices = d.price[known][order]
        uniq, start, counts = np.unique(keys, return_index=True, return_counts=True)
        lo = start + (counts - 1) // 2
        hi = start + counts // 2
        med = (prices[lo] + prices[hi]) / 2
        pos = np.clip(np.searchsorted(uniq, query_key), 0, max(len(uniq) - 1, 0))
        if len(uniq):
            hit = uniq[pos] == query_key
            out = np.where(hit, med[pos], out)
    return out
