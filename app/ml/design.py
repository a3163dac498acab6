"""Design matrices: the time split of the sales and the feature rows of each window.

Training rows are residential market sales before the calibration window with in-sample
features; calibration and validation rows get the features a model frozen at the first day
of their window would compute (nothing on or after it). `Prepared` holds the per-sale arrays
all three windows share, computed once. See docs/price-model.md, "Split".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from app.ml.data import TrainingData
from app.ml.features import (
    F64,
    I64,
    Levels,
    Rows,
    expanding_sums,
    feature_matrix,
    keyed_sums,
    month_index,
)
from app.ml.residential import is_residential

FIRST_DAY = date(2001, 1, 1).toordinal()
"""Sales before 2001 are previous sales only: never targets, never in a level."""
MAX_CATEGORIES = 250
BIG = 10**6
"""property_id * BIG + day orders every sale by property, then day, in one int64 key."""


def category_map(
    codes: NDArray[np.int32], vocab: list[str], mask: NDArray[np.bool_]
) -> dict[str, int]:
    """The most frequent values (among `mask` rows) -> category ids 0..MAX_CATEGORIES-1."""
    valid = codes[mask]
    valid = valid[valid >= 0]
    counts = np.bincount(valid, minlength=len(vocab))
    top = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
    return {vocab[i]: k for k, i in enumerate(top) if counts[i] > 0}


def categories_of(data: TrainingData, residential: NDArray[np.bool_]) -> dict[str, dict[str, int]]:
    """The category ids of the four categorical features, by their residential frequency."""
    return {
        "zoning": category_map(data.zoning, data.zoning_vocab, residential),
        "nature": category_map(data.nature, data.nature_vocab, residential),
        "primary_purpose": category_map(data.purpose, data.purpose_vocab, residential),
        "district": category_map(data.district, data.district_vocab, residential),
    }


def _map_codes(codes: NDArray[np.int32], vocab: list[str], mapping: dict[str, int]) -> F64:
    table = np.asarray([float(mapping.get(w, np.nan)) for w in vocab] + [np.nan])
    return table[codes]  # code -1 -> the trailing NaN


@dataclass(slots=True)
class Prepared:
    """Per-sale arrays shared by the training, calibration and validation matrices."""

    data: TrainingData
    residential: NDArray[np.bool_]
    logp: F64
    month: I64
    loc: I64
    dist: I64
    district_names: list[str]
    n_months: int
    cats: dict[str, F64]
    street_key: I64
    building_key: I64
    prev_keys: I64  # sorted property * BIG + day of all market sales
    prev_prop: I64
    prev_logp: F64


def prepare(data: TrainingData) -> Prepared:
    logp = np.log(np.maximum(data.price, 1.0))
    month = month_index(data.day)
    loc = np.searchsorted(data.loc_id, data.locality_id)
    loc = np.clip(loc, 0, max(len(data.loc_id) - 1, 0))
    # District of each locality: its own, else the district of its latest sale.
    latest = np.full(len(data.loc_id), -1, dtype=np.int64)
    order = np.argsort(data.day, kind="stable")
    latest[loc[order]] = data.district[order]
    names: list[str] = []
    index: dict[str, int] = {}
    loc_dist = np.full(len(data.loc_id), -1, dtype=np.int64)
    for i, own in enumerate(data.loc_district):
        name = own or (data.district_vocab[latest[i]] if latest[i] >= 0 else None)
        if name:
            if name not in index:
                index[name] = len(names)
                names.append(name)
            loc_dist[i] = index[name]
    residential = is_residential(data) & (data.day >= FIRST_DAY)
    n_streets = len(data.street_vocab) + 1
    n_houses = len(data.house_vocab) + 1
    has_street = data.street >= 0
    street_key = np.where(
        has_street, (loc * n_streets + data.street) * 2 + data.is_strata.astype(np.int64), -1
    )
    building_key = np.where(
        has_street & data.is_strata & (data.house >= 0),
        (loc * n_streets + data.street) * n_houses + data.house,
        -1,
    )
    categories = categories_of(data, residential)
    district_cat = np.asarray(
        [float(categories["district"].get(n, np.nan)) for n in names] + [np.nan]
    )
    cats = {
        "zoning": _map_codes(data.zoning, data.zoning_vocab, categories["zoning"]),
        "nature": _map_codes(data.nature, data.nature_vocab, categories["nature"]),
        "primary_purpose": _map_codes(
            data.purpose, data.purpose_vocab, categories["primary_purpose"]
        ),
        "district": district_cat[loc_dist[loc]],
    }
    prev_keys = data.property_id * BIG + data.day
    order = np.argsort(prev_keys, kind="stable")
    return Prepared(
        data=data,
        residential=residential,
        logp=logp,
        month=month,
        loc=loc,
        dist=loc_dist[loc],
        district_names=names,
        n_months=int(month[residential].max()) + 1 if residential.any() else 1,
        cats=cats,
        street_key=street_key,
        building_key=building_key,
        prev_keys=prev_keys[order],
        prev_prop=data.property_id[order],
        prev_logp=logp[order],
    )


def _levels(p: Prepared, known: NDArray[np.bool_]) -> Levels:
    d = p.data
    strata = d.is_strata[known].astype(np.int64)
    return Levels(
        p.loc[known] * 2 + strata,
        np.where(p.dist[known] >= 0, p.dist[known] * 2 + strata, -1),
        d.is_strata[known],
        p.month[known],
        p.logp[known],
        n_loc_groups=len(d.loc_id) * 2,
        n_dist_groups=len(p.district_names) * 2,
        n_months=p.n_months,
    )


def _rows_for(
    p: Prepared,
    idx: I64,
    *,
    cutoff_day: int | None,
    street: tuple[F64, F64],
    building: tuple[F64, F64],
) -> Rows:
    """Rows of sales `idx`. cutoff_day None: in-sample (levels up to the sale's month, its
    own earlier sales); else frozen at that day (what a model built then would know)."""
    d = p.data
    strata = d.is_strata[idx]
    s = strata.astype(np.int64)
    month = p.month[idx]
    day = d.day[idx]
    if cutoff_day is None:
        m_eff = month
        limit = day
    else:
        cut_month = int(month_index(np.asarray([cutoff_day]))[0])
        m_eff = np.minimum(month, cut_month + 1)
        limit = np.minimum(day, cutoff_day)
    prop = d.property_id[idx]
    pos = np.searchsorted(p.prev_keys, prop * BIG + limit, side="left") - 1
    first = np.searchsorted(p.prev_keys, prop * BIG, side="left")
    has1 = pos >= first
    has2 = pos - 1 >= first
    pos1 = np.clip(pos, 0, None)
    pos2 = np.clip(pos - 1, 0, None)
    dist = p.dist[idx]
    return Rows(
        loc_group=p.loc[idx] * 2 + s,
        dist_group=np.where(dist >= 0, dist * 2 + s, -1),
        strata=strata,
        month=month,
        m_eff=m_eff,
        day=day,
        area_m2=d.area_m2[idx],
        zoning=p.cats["zoning"][idx],
        nature=p.cats["nature"][idx],
        purpose=p.cats["primary_purpose"][idx],
        district=p.cats["district"][idx],
        latitude=d.loc_latitude[p.loc[idx]],
        longitude=d.loc_longitude[p.loc[idx]],
        street_s=street[0],
        street_n=street[1],
        building_s=building[0],
        building_n=building[1],
        prev1_logp=np.where(has1, p.prev_logp[pos1], np.nan),
        prev1_day=np.where(has1, (p.prev_keys[pos1] % BIG).astype(np.float64), np.nan),
        prev2_logp=np.where(has2, p.prev_logp[pos2], np.nan),
        prev2_day=np.where(has2, (p.prev_keys[pos2] % BIG).astype(np.float64), np.nan),
        n_prev=np.where(has1, pos - first + 1, 0).astype(np.float64),
    )


def _frozen_rows(p: Prepared, idx: I64, cutoff_day: int, residual: F64) -> tuple[Levels, Rows]:
    known = p.residential & (p.data.day < cutoff_day)
    levels = _levels(p, known)
    street = keyed_sums(p.street_key[known], residual[known], p.street_key[idx])
    building = keyed_sums(p.building_key[known], residual[known], p.building_key[idx])
    return levels, _rows_for(p, idx, cutoff_day=cutoff_day, street=street, building=building)


@dataclass(slots=True)
class DesignMatrices:
    """The three windows of a time split, each as (sale indices, X, reference level)."""

    prepared: Prepared
    levels_all: Levels
    residual: F64
    train_idx: I64
    X_train: NDArray[np.float64]
    ref_train: F64
    cal_idx: I64
    X_cal: NDArray[np.float64]
    ref_cal: F64
    rows_cal: Rows
    val_idx: I64
    X_val: NDArray[np.float64]
    ref_val: F64
    rows_val: Rows
    train_to: int
    cal_from: int
    val_from: int
    last_day: int


def design_matrices(
    data: TrainingData,
    *,
    holdout_weeks: int = 8,
    calibration_weeks: int = 8,
    train_from: date | None = None,
) -> DesignMatrices:
    """Features of the training, calibration and validation windows.

    Training rows are residential market sales before the calibration window, each with
    in-sample features (levels of the months before its own, residual sums and previous
    sales of strictly earlier days). Calibration and validation rows get the features a
    model frozen at the first day of their window would compute: nothing on or after it.
    """
    p = prepare(data)
    d = data
    res_idx = np.flatnonzero(p.residential)
    if len(res_idx) == 0:
        raise ValueError("no residential market sales to train on")
    last_day = int(d.day[res_idx].max())
    val_from = last_day - 7 * holdout_weeks + 1
    cal_from = val_from - 7 * calibration_weeks
    min_day = max(FIRST_DAY, train_from.toordinal() if train_from else FIRST_DAY)

    # In-sample reference level of every residential sale (its locality's trailing level,
    # months strictly before its own) -> residuals for the street / building encodings.
    levels_all = _levels(p, p.residential)
    none = np.zeros(len(res_idx))
    rows_all = _rows_for(p, res_idx, cutoff_day=None, street=(none, none), building=(none, none))
    _, ref_all = feature_matrix(levels_all, rows_all)
    residual = np.zeros(len(d))
    residual[res_idx] = p.logp[res_idx] - ref_all

    day = d.day
    train_mask = p.residential & (day < cal_from) & (day >= min_day) & (p.month >= 12)
    street_exp = expanding_sums(p.street_key[res_idx], day[res_idx], residual[res_idx])
    building_exp = expanding_sums(p.building_key[res_idx], day[res_idx], residual[res_idx])
    in_train = train_mask[res_idx]
    tr_idx = res_idx[in_train]
    rows_tr = _rows_for(
        p,
        tr_idx,
        cutoff_day=None,
        street=(street_exp[0][in_train], street_exp[1][in_train]),
        building=(building_exp[0][in_train], building_exp[1][in_train]),
    )
    X_tr, ref_tr = feature_matrix(levels_all, rows_tr)

    cal_idx = res_idx[(day[res_idx] >= cal_from) & (day[res_idx] < val_from)]
    levels_cal, rows_cal = _frozen_rows(p, cal_idx, cal_from, residual)
    X_cal, ref_cal = feature_matrix(levels_cal, rows_cal)

    val_idx = res_idx[day[res_idx] >= val_from]
    levels_val, rows_val = _frozen_rows(p, val_idx, val_from, residual)
    X_val, ref_val = feature_matrix(levels_val, rows_val)
    return DesignMatrices(
        prepared=p,
        levels_all=levels_all,
        residual=residual,
        train_idx=tr_idx,
        X_train=X_tr,
        ref_train=ref_tr,
        cal_idx=cal_idx,
        X_cal=X_cal,
        ref_cal=ref_cal,
        rows_cal=rows_cal,
        val_idx=val_idx,
        X_val=X_val,
        ref_val=ref_val,
        rows_val=rows_val,
        train_to=cal_from - 1,
        cal_from=cal_from,
        val_from=val_from,
        last_day=last_day,
    )
