"""The price model: training with a time split, split-conformal intervals, fast prediction.

See docs/price-model.md for the features, the filters, the split and the figures.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]

from app.pricing.data import TrainingData, load_training_sales
from app.pricing.features import (
    CATEGORICAL,
    F64,
    FEATURE_NAMES,
    I64,
    Levels,
    Rows,
    feature_matrix,
    month_index,
)

FIRST_DAY = date(2001, 1, 1).toordinal()
ARTIFACT_VERSION = 1
ARTIFACT_MAGIC = b"propintel-price-model:1:"
MAX_CATEGORIES = 250
INTERVAL = (0.1, 0.9)
MIN_BIN = 200  # calibration residuals needed for a conformal bin of its own
# Training targets further than this (log) from the reference are left out of the fit (not
# out of validation): family deals and mislabelled rows that a squared loss chases.
MAX_ABS_TARGET = 2.0

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


@dataclass(frozen=True, slots=True)
class Estimate:
    price: int
    low: int
    high: int
    as_of: date


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


def _category_map(
    codes: NDArray[np.int32], vocab: list[str], mask: NDArray[np.bool_]
) -> dict[str, int]:
    """The most frequent values (among `mask` rows) -> category ids 0..MAX_CATEGORIES-1."""
    valid = codes[mask]
    valid = valid[valid >= 0]
    counts = np.bincount(valid, minlength=len(vocab))
    top = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
    return {vocab[i]: k for k, i in enumerate(top) if counts[i] > 0}


def _map_codes(codes: NDArray[np.int32], vocab: list[str], mapping: dict[str, int]) -> F64:
    table = np.asarray([float(mapping.get(w, np.nan)) for w in vocab] + [np.nan])
    return table[codes]  # code -1 -> the trailing NaN


def _keyed_sums(known_keys: I64, values: F64, query_keys: I64) -> tuple[F64, F64]:
    """Sum and count of `values` per key, looked up for `query_keys` (-1: none)."""
    ok = known_keys >= 0
    uniq, inverse = np.unique(known_keys[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=values[ok], minlength=len(uniq)).astype(np.float64)
    counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    return _lookup(uniq.astype(np.int64), sums, counts, query_keys)


def _lookup(uniq: I64, sums: F64, counts: F64, query_keys: I64) -> tuple[F64, F64]:
    if len(uniq) == 0:
        z = np.zeros(len(query_keys))
        return z, z.copy()
    pos = np.clip(np.searchsorted(uniq, query_keys), 0, len(uniq) - 1)
    hit = (uniq[pos] == query_keys) & (query_keys >= 0)
    return np.where(hit, sums[pos], 0.0), np.where(hit, counts[pos], 0.0)


def _expanding_sums(keys: I64, day: I64, values: F64) -> tuple[F64, F64]:
    """Per row: sum and count of `values` of rows with the same key and a strictly earlier day."""
    n = len(keys)
    order = np.lexsort((day, keys))
    k, d, v = keys[order], day[order], values[order]
    cs = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(n)
    new_key = np.r_[True, k[1:] != k[:-1]] if n else np.zeros(0, dtype=bool)
    new_run = new_key | (np.r_[True, d[1:] != d[:-1]] if n else np.zeros(0, dtype=bool))
    key_start = np.maximum.accumulate(np.where(new_key, idx, 0)) if n else idx
    run_start = np.maximum.accumulate(np.where(new_run, idx, 0)) if n else idx
    s = cs[run_start] - cs[key_start]
    c = (run_start - key_start).astype(np.float64)
    none = k < 0
    s[none] = 0.0
    c[none] = 0.0
    out_s = np.empty(n)
    out_c = np.empty(n)
    out_s[order] = s
    out_c[order] = c
    return out_s, out_c


def _conformal_bin(strata: NDArray[np.bool_], has_prev: NDArray[np.bool_]) -> I64:
    return strata.astype(np.int64) * 2 + has_prev.astype(np.int64)


def _offsets(residuals: F64, bins: I64) -> F64:
    """Split-conformal (10%, 90%) residual quantiles per bin; rows [pooled, bin 0..3]."""

    def q(r: F64) -> tuple[float, float]:
        n = len(r)
        lo = max(0.0, min(1.0, np.floor((n + 1) * INTERVAL[0]) / n))
        hi = max(0.0, min(1.0, np.ceil((n + 1) * INTERVAL[1]) / n))
        return float(np.quantile(r, lo)), float(np.quantile(r, hi))

    pooled = q(residuals) if len(residuals) else (-0.2, 0.2)
    out = np.empty((5, 2))
    out[0] = pooled
    for b in range(4):
        r = residuals[bins == b]
        out[b + 1] = q(r) if len(r) >= MIN_BIN else pooled
    out[:, 0] = np.minimum(out[:, 0], 0.0)
    out[:, 1] = np.maximum(out[:, 1], 0.0)
    return out


def _scores(pred: F64, price: F64, low: F64, high: F64) -> dict[str, float]:
    ape = np.abs(pred - price) / price
    return {
        "mdape": float(np.median(ape)) if len(ape) else float("nan"),
        "within_10": float(np.mean(ape <= 0.10)) if len(ape) else float("nan"),
        "within_20": float(np.mean(ape <= 0.20)) if len(ape) else float("nan"),
        "coverage": float(np.mean((price >= low) & (price <= high))) if len(ape) else float("nan"),
    }


class PriceModel:
    """Fitted estimator + everything prediction needs. Pickled whole by `to_bytes`."""

    feature_names: list[str]
    data_from: date
    data_to: date
    metrics: ValidationMetrics

    def __init__(
        self,
        *,
        estimator: Any,
        levels: Levels,
        offsets: F64,
        loc_ids: I64,
        loc_dist_index: I64,
        loc_latitude: F64,
        loc_longitude: F64,
        district_index: dict[str, int],
        categories: dict[str, dict[str, int]],
        street_codes: dict[str, int],
        house_codes: dict[str, int],
        street_table: tuple[I64, F64, F64],
        building_table: tuple[I64, F64, F64],
        data_from: date,
        data_to: date,
        metrics: ValidationMetrics,
    ) -> None:
        self.version = ARTIFACT_VERSION
        self.estimator = estimator
        self.levels = levels
        self.offsets = offsets
        self.loc_ids = loc_ids
        self.loc_index = {int(v): i for i, v in enumerate(loc_ids)}
        self.loc_dist_index = loc_dist_index
        self.loc_latitude = loc_latitude
        self.loc_longitude = loc_longitude
        self.district_index = district_index
        self.categories = categories
        self.street_codes = street_codes
        self.house_codes = house_codes
        self.street_table = street_table
        self.building_table = building_table
        self.feature_names = list(FEATURE_NAMES)
        self.data_from = data_from
        self.data_to = data_to
        self.metrics = metrics

    def knows_locality(self, locality_id: int | None) -> bool:
        if locality_id is None or locality_id not in self.loc_index:
            return False
        g = self.loc_index[locality_id] * 2
        return bool(self.levels.loc_n[g].sum() + self.levels.loc_n[g + 1].sum() > 0)

    # -- serialisation ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A zlib-compressed pickle (the monthly level tables are mostly zeros: ~48 MB raw).
        Only load artifacts this project made: unpickling runs code."""
        return ARTIFACT_MAGIC + zlib.compress(pickle.dumps(self, protocol=5), 3)

    @classmethod
    def from_bytes(cls, data: bytes) -> PriceModel:
        if data.startswith(ARTIFACT_MAGIC):
            data = zlib.decompress(data[len(ARTIFACT_MAGIC) :])
        model = pickle.loads(data)
        if not isinstance(model, cls):
            raise TypeError(f"not a PriceModel artifact: {type(model).__name__}")
        return model

    # -- prediction ------------------------------------------------------------------------
    def _rows(self, subjects: Sequence[Subject], days: I64) -> Rows:
        n = len(subjects)
        loc = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, -1, dtype=np.int64)
        strata = np.zeros(n, dtype=np.bool_)
        lat = np.full(n, np.nan)
        lon = np.full(n, np.nan)
        area = np.full(n, np.nan)
        cats = {name: np.full(n, np.nan) for name in ("zoning", "nature", "primary_purpose")}
        district_cat = np.full(n, np.nan)
        street_key = np.full(n, -1, dtype=np.int64)
        building_key = np.full(n, -1, dtype=np.int64)
        prev = np.full((4, n), np.nan)  # prev1 logp, prev1 day, prev2 logp, prev2 day
        n_prev = np.zeros(n)
        n_streets = len(self.street_codes) + 1
        n_houses = len(self.house_codes) + 1
        district_codes = self.categories["district"]
        for i, s in enumerate(subjects):
            li = self.loc_index.get(s.locality_id, -1) if s.locality_id is not None else -1
            strata[i] = s.is_strata
            if li >= 0:
                loc[i] = li
                di = int(self.loc_dist_index[li])
                lat[i] = self.loc_latitude[li]
                lon[i] = self.loc_longitude[li]
            else:
                di = self.district_index.get((s.district_code or "").strip().upper(), -1)
            if np.isnan(lat[i]) and s.latitude is not None and s.longitude is not None:
                lat[i], lon[i] = s.latitude, s.longitude
            dist[i] = di
            if di >= 0:
                district_cat[i] = district_codes.get(self._district_names[di], np.nan)
            if s.area_m2 is not None:
                area[i] = s.area_m2
            for name, value in (
                ("zoning", s.zoning),
                ("nature", s.nature),
                ("primary_purpose", s.primary_purpose),
            ):
                if value:
                    cats[name][i] = self.categories[name].get(value.strip().upper(), np.nan)
            street = self.street_codes.get((s.street_name or "").strip().upper(), -1)
            if li >= 0 and street >= 0:
                street_key[i] = (li * n_streets + street) * 2 + int(s.is_strata)
                house = self.house_codes.get((s.house_number or "").strip().upper(), -1)
                if s.is_strata and house >= 0:
                    building_key[i] = (li * n_streets + street) * n_houses + house
            earlier = [(d.toordinal(), p) for d, p in s.previous_sales if d.toordinal() < days[i]]
            earlier = [(d, p) for d, p in earlier if p > 0]
            n_prev[i] = len(earlier)
            if earlier:
                prev[0, i], prev[1, i] = np.log(earlier[-1][1]), earlier[-1][0]
            if len(earlier) > 1:
                prev[2, i], prev[3, i] = np.log(earlier[-2][1]), earlier[-2][0]
        strata_i = strata.astype(np.int64)
        month = month_index(days)
        street_s, street_n = _lookup(*self.street_table, street_key)
        building_s, building_n = _lookup(*self.building_table, building_key)
        return Rows(
            loc_group=np.where(loc >= 0, loc * 2 + strata_i, -1),
            dist_group=np.where(dist >= 0, dist * 2 + strata_i, -1),
            strata=strata,
            month=month,
            m_eff=np.minimum(month, self.levels.n_months),
            day=days,
            area_m2=area,
            zoning=cats["zoning"],
            nature=cats["nature"],
            purpose=cats["primary_purpose"],
            district=district_cat,
            latitude=lat,
            longitude=lon,
            street_s=street_s,
            street_n=street_n,
            building_s=building_s,
            building_n=building_n,
            prev1_logp=prev[0],
            prev1_day=prev[1],
            prev2_logp=prev[2],
            prev2_day=prev[3],
            n_prev=n_prev,
        )

    @property
    def _district_names(self) -> list[str]:
        names = getattr(self, "_district_names_cache", None)
        if names is None:
            names = [""] * len(self.district_index)
            for name, i in self.district_index.items():
                names[i] = name
            self._district_names_cache = names
        return names

    def predict_log(self, subjects: Sequence[Subject], as_of: date | Sequence[date]) -> F64:
        """log(price) point predictions (the batch's one estimator call)."""
        days = self._days(subjects, as_of)
        X, ref = feature_matrix(self.levels, self._rows(subjects, days))
        return ref + _predict_raw(self.estimator, X)

    def _days(self, subjects: Sequence[Subject], as_of: date | Sequence[date]) -> I64:
        if isinstance(as_of, date):
            return np.full(len(subjects), as_of.toordinal(), dtype=np.int64)
        if len(as_of) != len(subjects):
            raise ValueError("as_of: one date, or one per subject")
        return np.asarray([d.toordinal() for d in as_of], dtype=np.int64)

    def predict(self, subjects: Sequence[Subject], as_of: date | Sequence[date]) -> list[Estimate]:
        if not subjects:
            return []
        days = self._days(subjects, as_of)
        rows = self._rows(subjects, days)
        X, ref = feature_matrix(self.levels, rows)
        logp = ref + _predict_raw(self.estimator, X)
        bins = _conformal_bin(rows.strata, rows.n_prev > 0) + 1
        low = np.exp(logp + self.offsets[bins, 0])
        high = np.exp(logp + self.offsets[bins, 1])
        price = np.exp(logp)
        return [
            Estimate(
                price=round(float(p)),
                low=min(round(float(lo)), round(float(p))),
                high=max(round(float(hi)), round(float(p))),
                as_of=date.fromordinal(int(d)),
            )
            for p, lo, hi, d in zip(price, low, high, days, strict=True)
        ]


@dataclass(slots=True)
class _Prepared:
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


BIG = 10**6


def _prepare(data: TrainingData, categories: dict[str, dict[str, int]] | None) -> _Prepared:
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
    if categories is None:
        categories = {
            "zoning": _category_map(data.zoning, data.zoning_vocab, residential),
            "nature": _category_map(data.nature, data.nature_vocab, residential),
            "primary_purpose": _category_map(data.purpose, data.purpose_vocab, residential),
            "district": _category_map(data.district, data.district_vocab, residential),
        }
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
    return _Prepared(
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


def _levels(p: _Prepared, known: NDArray[np.bool_]) -> Levels:
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
    p: _Prepared,
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


def _frozen_rows(p: _Prepared, idx: I64, cutoff_day: int, residual: F64) -> tuple[Levels, Rows]:
    known = p.residential & (p.data.day < cutoff_day)
    levels = _levels(p, known)
    street = _keyed_sums(p.street_key[known], residual[known], p.street_key[idx])
    building = _keyed_sums(p.building_key[known], residual[known], p.building_key[idx])
    return levels, _rows_for(p, idx, cutoff_day=cutoff_day, street=street, building=building)


def _baseline(p: _Prepared, idx: I64, cutoff_day: int) -> F64:
    """Median price of the locality x strata over the 12 months before the cutoff (else the
    district x strata, else the strata)."""
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


@dataclass(slots=True)
class DesignMatrices:
    """The three windows of a time split, each as (sale indices, X, reference level)."""

    prepared: _Prepared
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
    p = _prepare(data, None)
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
    street_exp = _expanding_sums(p.street_key[res_idx], day[res_idx], residual[res_idx])
    building_exp = _expanding_sums(p.building_key[res_idx], day[res_idx], residual[res_idx])
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


def _predict_raw(estimator: Any, X: NDArray[np.float64]) -> F64:
    """The estimator's one call for the whole batch. Small batches run on one OpenMP thread
    (sklearn's private `_raw_predict`, identity link of the squared loss): thread start-up
    costs more than the trees on 100 rows and made latency spiky."""
    raw = getattr(estimator, "_raw_predict", None)
    if raw is not None and len(X) <= 5_000:
        return np.asarray(raw(X, n_threads=1), dtype=np.float64).ravel()
    return np.asarray(estimator.predict(X), dtype=np.float64)


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
    estimator.fit(m.X_train[fit], y_tr[fit])
    n_train = int(fit.sum())
    m.X_train = np.zeros((0, len(FEATURE_NAMES)))
    log("fitted")

    pred_cal = m.ref_cal + _predict_raw(estimator, m.X_cal) if len(m.cal_idx) else m.ref_cal
    offsets = _offsets(
        p.logp[m.cal_idx] - pred_cal, _conformal_bin(m.rows_cal.strata, m.rows_cal.n_prev > 0)
    )
    pred_val = m.ref_val + estimator.predict(m.X_val) if len(m.val_idx) else m.ref_val
    bins = _conformal_bin(m.rows_val.strata, m.rows_val.n_prev > 0) + 1
    price = d.price[m.val_idx]
    scores = _scores(
        np.exp(pred_val),
        price,
        np.exp(pred_val + offsets[bins, 0]),
        np.exp(pred_val + offsets[bins, 1]),
    )
    baseline = _baseline(p, m.val_idx, m.val_from)
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
    log(f"validation {scores}, baseline {float(np.nanmedian(base_ape)):.4f}, {segments}")

    # Served look-up tables: everything we hold.
    res_idx = np.flatnonzero(p.residential)
    metrics = ValidationMetrics(
        mdape=scores["mdape"],
        within_10=scores["within_10"],
        within_20=scores["within_20"],
        coverage=scores["coverage"],
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
        categories=_categories(p, data),
        street_codes={w: i for i, w in enumerate(d.street_vocab)},
        house_codes={w: i for i, w in enumerate(d.house_vocab)},
        street_table=_table(p.street_key[res_idx], m.residual[res_idx]),
        building_table=_table(p.building_key[res_idx], m.residual[res_idx]),
        data_from=date.fromordinal(int(d.day[res_idx].min())),
        data_to=date.fromordinal(m.last_day),
        metrics=metrics,
    )


def _table(keys: I64, values: F64) -> tuple[I64, F64, F64]:
    ok = keys >= 0
    uniq, inverse = np.unique(keys[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=values[ok], minlength=len(uniq)).astype(np.float64)
    counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    return uniq.astype(np.int64), sums, counts


def _loc_dist(p: _Prepared) -> I64:
    out = np.full(len(p.data.loc_id), -1, dtype=np.int64)
    out[p.loc] = p.dist
    # Localities without sales: fall back to their own district when named.
    index = {name: i for i, name in enumerate(p.district_names)}
    for i, own in enumerate(p.data.loc_district):
        if out[i] < 0 and own and own in index:
            out[i] = index[own]
    return out


def _categories(p: _Prepared, data: TrainingData) -> dict[str, dict[str, int]]:
    return {
        "zoning": _category_map(data.zoning, data.zoning_vocab, p.residential),
        "nature": _category_map(data.nature, data.nature_vocab, p.residential),
        "primary_purpose": _category_map(data.purpose, data.purpose_vocab, p.residential),
        "district": _category_map(data.district, data.district_vocab, p.residential),
    }


def train_from_url(
    database_url: str, *, cache: str | Path | None = None, **kwargs: Any
) -> PriceModel:
    """Load (or read `cache`) and train. Synchronous and top-level: runs in a process pool."""
    if cache is not None and Path(cache).exists():
        data = TrainingData.load(cache)
    else:
        data = asyncio.run(load_training_sales(database_url))
        if cache is not None:
            data.save(cache)
    return train(data, **kwargs)
