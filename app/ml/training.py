"""Training: fit on a time split, calibrate the interval, score the held-out weeks.

`train` fits the estimator on residential market sales before the calibration window,
calibrates the split-conformal interval on the calibration window, and scores the last
`holdout_weeks` weeks. The served model is that validated estimator with its look-up tables
rebuilt from all the data (never refitted), so the figures describe what is served. See
docs/price-model.md for the features, the filters, the split and the figures.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]

from app.ml.classes import (
    N_CLASSES,
    blank,
    class_name,
    class_offsets,
    class_parts,
    class_predictions,
    facts_of,
)
from app.ml.conformal import conformal_bin, conformal_offsets
from app.ml.data import TrainingData, load_training_sales_sync
from app.ml.design import Prepared, categories_of, design_matrices
from app.ml.features import CATEGORICAL, F64, FEATURE_NAMES, I64, keyed_table
from app.ml.metrics import ValidationMetrics, baseline_prices, scores
from app.ml.model import PriceModel, predict_raw

# Training targets further than this (log) from the reference are left out of the fit (not
# out of validation): family deals and mislabelled rows that a squared loss chases.
MAX_ABS_TARGET = 2.0
AUGMENT = 0.2
"""Share of the fitted rows fitted a second time as an `estimatePrice` caller would pose
them: no previous sales, no primary purpose, no building, and (half of them) no street.
Rows without those features are otherwise a biased few (first sales, new streets), so the
trees' missing-value branches learnt little about a typical typed-in subject."""


def train(
    data: TrainingData,
    *,
    holdout_weeks: int = 8,
    calibration_weeks: int = 8,
    max_iter: int = 150,
    learning_rate: float = 0.2,
    max_leaf_nodes: int = 255,
    min_samples_leaf: int = 100,
    train_from: date | None = None,
    random_state: int = 0,
    augment: float = AUGMENT,
    verbose: bool = False,
) -> PriceModel:
    """Fit on residential market sales before the calibration window, calibrate the interval
    on the calibration window, score the last `holdout_weeks` weeks. The served model is the
    validated estimator with its look-up tables refreshed to all the data."""
    started = time.perf_counter()

    def log(message: str) -> None:
        if verbose:
            print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    m = design_matrices(
        data,
        holdout_weeks=holdout_weeks,
        calibration_weeks=calibration_weeks,
        train_from=train_from,
    )
    p = m.prepared
    d = data
    y_tr = p.logp[m.train_idx] - m.ref_train
    fit = (np.abs(y_tr) <= MAX_ABS_TARGET) & (d.price[m.train_idx] >= 10_000)
    log(f"design matrices built: train {m.X_train.shape}, fitting on {int(fit.sum()):,}")
    categorical = [name in CATEGORICAL for name in FEATURE_NAMES]
    estimator = HistGradientBoostingRegressor(
        loss="squared_error",
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=1.0,
        categorical_features=categorical,
        early_stopping=False,
        random_state=random_state,
    )
    X_fit, y_fit = m.X_train[fit], y_tr[fit]
    n_train = len(y_fit)
    m.X_train = np.zeros((0, len(FEATURE_NAMES)))
    if augment > 0 and n_train:
        rng = np.random.default_rng(random_state)
        pick = np.flatnonzero(rng.random(n_train) < augment)
        half = rng.random(len(pick)) < 0.5
        X_fit = np.concatenate([X_fit, blank(X_fit[pick[half]], 2), blank(X_fit[pick[~half]], 6)])
        y_fit = np.concatenate([y_fit, y_fit[pick[half]], y_fit[pick[~half]]])
        log(f"augmented: {len(pick):,} rows fitted again as a typed-in subject")
    estimator.fit(X_fit, y_fit)
    del X_fit, y_fit
    log("fitted")

    def predict(X: NDArray[np.float64]) -> F64:
        return predict_raw(estimator, X)

    pred_cal = m.ref_cal + predict(m.X_cal) if len(m.cal_idx) else m.ref_cal
    offsets = conformal_offsets(
        p.logp[m.cal_idx] - pred_cal, conformal_bin(m.rows_cal.strata, m.rows_cal.n_prev > 0)
    )
    cal_classes = class_predictions(m.X_cal, m.ref_cal, predict)
    by_class, merged, cal_counts = class_offsets(cal_classes, p.logp[m.cal_idx])
    pred_val = m.ref_val + predict(m.X_val) if len(m.val_idx) else m.ref_val
    bins = facts_of(m.X_val)
    price = d.price[m.val_idx]
    val_scores = scores(
        np.exp(pred_val),
        price,
        np.exp(pred_val + by_class[bins, 0]),
        np.exp(pred_val + by_class[bins, 1]),
    )
    val_classes = class_predictions(m.X_val, m.ref_val, predict)
    classes: list[dict[str, Any]] = []
    for code in range(N_CLASSES):
        rows, pred = val_classes.rows[code], val_classes.logp[code]
        history, _, _, strata = class_parts(code)
        old = offsets[1 + int(strata) * 2 + int(history)]  # the strata x history bins
        at = price[rows]
        lo, hi = by_class[code]
        now = scores(np.exp(pred), at, np.exp(pred + lo), np.exp(pred + hi))
        before = scores(np.exp(pred), at, np.exp(pred + old[0]), np.exp(pred + old[1]))
        classes.append(
            {
                "name": class_name(code),
                "sales": len(rows),
                "mdape": now["mdape"] if len(rows) else None,  # JSON has no NaN
                "coverage": now["coverage"] if len(rows) else None,
                "calibration_sales": cal_counts[code],
                "merged_into": merged[code],
            }
        )
        log(
            f"class {class_name(code)}: {len(rows):,} sales, MdAPE {now['mdape']:.4f}, "
            f"coverage {now['coverage']:.4f} (strata x history bins: {before['coverage']:.4f})"
            f", calibration {cal_counts[code]:,}, merged {merged[code]}"
        )
    baseline = baseline_prices(p, m.val_idx, m.val_from)
    base_ape = np.abs(baseline - price) / price
    segments: dict[str, float] = {}
    ape = np.abs(np.exp(pred_val) - price) / price
    for name, mask in (
        ("house", ~m.rows_val.strata),
        ("strata", m.rows_val.strata),
        ("repeat_sale", m.rows_val.n_prev > 0),
        ("first_sale", m.rows_val.n_prev == 0),
    ):
        if mask.any():
            segments[name] = float(np.median(ape[mask]))
    log(f"validation {val_scores}, baseline {float(np.nanmedian(base_ape)):.4f}, {segments}")

    # Served look-up tables: everything we hold.
    res_idx = np.flatnonzero(p.residential)
    metrics = ValidationMetrics(
        mdape=val_scores["mdape"],
        within_10=val_scores["within_10"],
        within_20=val_scores["within_20"],
        coverage=val_scores["coverage"],
        n_validation=len(m.val_idx),
        n_train=n_train,
        baseline_mdape=float(np.nanmedian(base_ape)) if len(base_ape) else float("nan"),
        n_calibration=len(m.cal_idx),
        train_to=date.fromordinal(m.train_to),
        calibration_from=date.fromordinal(m.cal_from),
        validation_from=date.fromordinal(m.val_from),
        validation_to=date.fromordinal(m.last_day),
        training_seconds=time.perf_counter() - started,
        mdape_by_segment=segments,
        classes=classes,
    )
    return PriceModel(
        estimator=estimator,
        levels=m.levels_all,
        offsets=offsets,
        loc_ids=d.loc_id.copy(),
        loc_dist_index=_loc_dist(p),
        loc_latitude=d.loc_latitude.copy(),
        loc_longitude=d.loc_longitude.copy(),
        district_index={name: i for i, name in enumerate(p.district_names)},
        categories=categories_of(data, p.residential),
        street_codes={w: i for i, w in enumerate(d.street_vocab)},
        house_codes={w: i for i, w in enumerate(d.house_vocab)},
        street_table=keyed_table(p.street_key[res_idx], m.residual[res_idx]),
        building_table=keyed_table(p.building_key[res_idx], m.residual[res_idx]),
        data_from=date.fromordinal(int(d.day[res_idx].min())),
        data_to=date.fromordinal(m.last_day),
        metrics=metrics,
        class_offsets=by_class,
    )


def _loc_dist(p: Prepared) -> I64:
    """District index of every locality, for subjects the served model predicts."""
    out = np.full(len(p.data.loc_id), -1, dtype=np.int64)
    out[p.loc] = p.dist
    # Localities without sales: fall back to their own district when named.
    index = {name: i for i, name in enumerate(p.district_names)}
    for i, own in enumerate(p.data.loc_district):
        if out[i] < 0 and own and own in index:
            out[i] = index[own]
    return out


def train_from_url(
    database_url: str, *, cache: str | Path | None = None, **kwargs: Any
) -> PriceModel:
    """Load (or read `cache`) and train. Synchronous and top-level: runs in a process pool."""
    return train(load_training_sales_sync(database_url, cache=cache), **kwargs)
