"""The fitted price model: what prediction needs, and `predict`.

A `PriceModel` is the validated estimator plus the look-up tables its features read
(monthly levels, street and building residual sums, locality and category codes) and the
conformal offsets of its interval. It is pickled whole (app/ml/artifact.py), so its module
path and attribute names are part of the stored format; app/ml/training.py builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.ml import artifact
from app.ml.artifact import ARTIFACT_VERSION
from app.ml.classes import facts_of
from app.ml.conformal import offset_rows
from app.ml.features import (
    F64,
    FEATURE_NAMES,
    I64,
    Levels,
    Rows,
    feature_matrix,
    lookup,
    month_index,
)
from app.ml.metrics import ValidationMetrics
from app.ml.subject import Estimate, Subject


def predict_raw(estimator: Any, X: NDArray[np.float64]) -> F64:
    """The estimator's one call for the whole batch. Small batches run on one OpenMP thread
    (sklearn's private `_raw_predict`, identity link of the squared loss): thread start-up
    costs more than the trees on 100 rows and made latency spiky."""
    raw = getattr(estimator, "_raw_predict", None)
    if raw is not None and len(X) <= 5_000:
        return np.asarray(raw(X, n_threads=1), dtype=np.float64).ravel()
    return np.asarray(estimator.predict(X), dtype=np.float64)


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
        class_offsets: F64 | None = None,
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
        self.class_offsets = class_offsets
        """(16, 2) offsets per caller class (app/ml/classes.py); None in artifacts trained
        before the classes, which use `offsets` per strata x history bin."""

    def knows_locality(self, locality_id: int | None) -> bool:
        if locality_id is None or locality_id not in self.loc_index:
            return False
        g = self.loc_index[locality_id] * 2
        return bool(self.levels.loc_n[g].sum() + self.levels.loc_n[g + 1].sum() > 0)

    # -- serialisation (app/ml/artifact.py) ------------------------------------------------
    def to_bytes(self) -> bytes:
        """The artifact: a zlib-compressed pickle of this object. Only load artifacts this
        project made: unpickling runs code."""
        return artifact.dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes, *, sha256: str | None = None) -> PriceModel:
        """The model of an artifact; with `sha256`, first checks the digest stored with it
        (ValueError on a mismatch). Artifacts of the old `app.pricing` paths load too."""
        if sha256 is not None:
            artifact.check_sha256(data, sha256)
        model = artifact.loads(data)
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
        street_s, street_n = lookup(*self.street_table, street_key)
        building_s, building_n = lookup(*self.building_table, building_key)
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
        logp = ref + predict_raw(self.estimator, X)
        class_offsets = getattr(self, "class_offsets", None)  # None: older artifacts
        if class_offsets is not None:
            table, bins = class_offsets, facts_of(X)
        else:
            table, bins = self.offsets, offset_rows(rows.strata, rows.n_prev > 0)
        low = np.exp(logp + table[bins, 0])
        high = np.exp(logp + table[bins, 1])
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
