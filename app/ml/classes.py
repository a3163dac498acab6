"""Caller classes of the interval: what a prediction was given (history, street, area) x strata.

The conformal offsets depend on how much the model was told: an `estimatePrice` caller
with only a locality and a strata flag gets a far wider error than `Property.estimate` of a
property with its own sales. So the interval is calibrated per *class* of what the subject
has, and each class is calibrated on calibration rows predicted *as that class's caller is
served*: the features the class lacks are blanked exactly as prediction leaves them for a
subject without them (`blank`).

A class is `history * 8 + street * 4 + area * 2 + strata` (16 classes):

* history: a previous market sale before asOf (`n_previous_sales > 0`);
* street: a street with earlier sales in the model's table (`log_street_sales > 0`; a street
  name the model has no sale of is served exactly like no street);
* area: a land area above 0;
* strata: the subject's strata flag.

A row is *eligible* for a class when it has at least what the class has (same strata flag);
it is blanked down to the class. Classes without history are calibrated as `estimatePrice`
serves them: it passes no primary purpose and no house number, so those features (and the
building residual) are blanked too. A class with fewer than `MIN_CLASS` calibration rows
merges with its sibling of the other area flag, then with all classes of its (history,
strata), then with all classes (`merged_into` names the flags merged over: "area",
"street and area", "all").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.ml.conformal import conformal_quantiles
from app.ml.features import F64, FEATURE_NAMES, I64

N_CLASSES = 16
MIN_CLASS = 300
"""Calibration rows a class needs for offsets of its own (else it merges)."""

_COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
HISTORY_COLUMNS = (
    "prev1_indexed_minus_ref",
    "prev1_raw_minus_ref",
    "prev1_years_ago",
    "prev2_indexed_minus_ref",
    "prev2_years_ago",
)


def class_of(
    has_history: NDArray[np.bool_],
    has_street: NDArray[np.bool_],
    has_area: NDArray[np.bool_],
    strata: NDArray[np.bool_],
) -> I64:
    return (
        has_history.astype(np.int64) * 8
        + has_street.astype(np.int64) * 4
        + has_area.astype(np.int64) * 2
        + strata.astype(np.int64)
    )


def class_parts(code: int) -> tuple[bool, bool, bool, bool]:
    """(history, street, area, strata) of a class."""
    return bool(code & 8), bool(code & 4), bool(code & 2), bool(code & 1)


def class_name(code: int) -> str:
    history, street, area, strata = class_parts(code)
    return "/".join(
        (
            "strata" if strata else "house",
            "history" if history else "no history",
            "street" if street else "no street",
            "area" if area else "no area",
        )
    )


def facts_of(X: NDArray[np.float64]) -> I64:
    """The class each feature row has (what it was given)."""
    log_area = X[:, _COL["log_area_m2"]]
    return class_of(
        X[:, _COL["n_previous_sales"]] > 0,
        X[:, _COL["log_street_sales"]] > 0,
        np.isfinite(log_area),
        X[:, _COL["is_strata"]] > 0.5,
    )


def eligible(facts: I64, code: int) -> NDArray[np.bool_]:
    """Rows that have at least what class `code` has, with its strata flag."""
    need = code & 14
    out: NDArray[np.bool_] = ((facts & 1) == (code & 1)) & ((facts & need) == need)
    return out


def blank(X: NDArray[np.float64], code: int) -> NDArray[np.float64]:
    """A copy of `X` with what class `code` lacks blanked as prediction leaves it: no street
    -> street sums 0 (residual 0 / (0 + k)) and no building; no history -> previous-sale
    features missing, none counted, and (estimatePrice) no purpose nor building; no area ->
    area missing."""
    history, street, area, _ = class_parts(code)
    out = X.copy()
    if not street or not history:
        out[:, _COL["building_residual"]] = np.nan
        out[:, _COL["log_building_sales"]] = 0.0
    if not street:
        out[:, _COL["street_residual"]] = 0.0
        out[:, _COL["log_street_sales"]] = 0.0
    if not history:
        for name in HISTORY_COLUMNS:
            out[:, _COL[name]] = np.nan
        out[:, _COL["n_previous_sales"]] = 0.0
        out[:, _COL["primary_purpose"]] = np.nan
    if not area:
        out[:, _COL["log_area_m2"]] = np.nan
    return out


@dataclass(frozen=True, slots=True)
class ClassPredictions:
    """Per class: the eligible rows (indices into the window) and their blanked log-price
    predictions."""

    rows: list[I64]
    logp: list[F64]


def class_predictions(
    X: NDArray[np.float64], ref: F64, predict: Callable[[NDArray[np.float64]], F64]
) -> ClassPredictions:
    """Every eligible row of a window predicted as each class's caller would be served (one
    estimator call for all classes)."""
    facts = facts_of(X)
    rows = [np.flatnonzero(eligible(facts, c)) for c in range(N_CLASSES)]
    blocks = [blank(X[r], c) for c, r in enumerate(rows)]
    stacked = np.concatenate(blocks) if blocks else np.zeros((0, X.shape[1]))
    raw = predict(stacked) if len(stacked) else np.zeros(0)
    out: list[F64] = []
    start = 0
    for r in rows:
        out.append(ref[r] + raw[start : start + len(r)])
        start += len(r)
    return ClassPredictions(rows=rows, logp=out)


def merge_order(code: int) -> list[list[int]]:
    """The classes whose residuals class `code` uses, finest first: itself, with its sibling
    of the other area flag, all of its (history, strata), all classes."""
    sibling = code ^ 2
    same = [c for c in range(N_CLASSES) if (c & 9) == (code & 9)]
    return [[code], [code, sibling], same, list(range(N_CLASSES))]


def class_offsets(cal: ClassPredictions, logp: F64) -> tuple[F64, list[str | None], list[int]]:
    """(offsets (N_CLASSES, 2), merged_into per class (None: its own), calibration rows per
    class) from the calibration window's class predictions and true log prices."""
    residuals = [logp[r] - p for r, p in zip(cal.rows, cal.logp, strict=True)]
    offsets = np.zeros((N_CLASSES, 2))
    merged: list[str | None] = []
    counts = [len(r) for r in residuals]
    for code in range(N_CLASSES):
        for level, group in enumerate(merge_order(code)):
            pooled = np.concatenate([residuals[c] for c in group])
            if len(pooled) >= MIN_CLASS or level == 3:
                offsets[code] = conformal_quantiles(pooled) if len(pooled) else (-0.2, 0.2)
                merged.append((None, "area", "street and area", "all")[level])
                break
    offsets[:, 0] = np.minimum(offsets[:, 0], 0.0)
    offsets[:, 1] = np.maximum(offsets[:, 1], 0.0)
    return offsets, merged, counts
