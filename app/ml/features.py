"""Leak-free features: trailing price levels, keyed residual sums, previous sales.

Everything here is vectorised over numpy arrays; the same functions build the training
matrix (4 million rows) and the matrix of a 100-subject prediction batch.

Months count from January 2001 (month 0). A price *level* is the mean log price of the
residential market sales of a group (locality x strata, district x strata, strata) over a
trailing window of whole months that ends *before* the month of the row (`m_eff`), so a
sale's own price, and anything later, never enters its own features.

`Levels` is pickled into the model artifact by its module path: moving or renaming it needs
an entry in app/ml/artifact.py's MOVED_CLASSES so stored models still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
FIRST_MONTH = (2001 - 1970) * 12  # months since 1970-01 of 2001-01
DAYS_PER_YEAR = 365.25

# Shrinkage strengths (pseudo-counts): locality -> district -> state, street/building -> 0.
K_LOCALITY = 5.0
K_DISTRICT = 10.0
K_STATE = 1.0
K_STREET = 3.0

PRIOR_LOG_PRICE = 12.9  # about $400k
WINDOWS = (3, 12, 36)
REF_WINDOW = 12


def month_index(days: I64) -> I64:
    """Months since 2001-01 (clipped at 0) of proleptic ordinals."""
    d = (np.asarray(days, dtype=np.int64) - EPOCH_ORDINAL).astype("datetime64[D]")
    months = d.astype("datetime64[M]").astype(np.int64)
    return np.maximum(months - FIRST_MONTH, 0)


class Levels:
    """Monthly counts and log-price sums per group, with cumulative sums for windows."""

    def __init__(
        self,
        loc_group: I64,
        dist_group: I64,
        strata: NDArray[np.bool_],
        month: I64,
        logp: F64,
        *,
        n_loc_groups: int,
        n_dist_groups: int,
        n_months: int,
    ) -> None:
        self.n_months = n_months
        s = strata.astype(np.int64)
        keep = month < n_months
        self.loc_n, self.loc_s = self._monthly(loc_group, month, logp, keep, n_loc_groups)
        self.dist_n, self.dist_s = self._monthly(dist_group, month, logp, keep, n_dist_groups)
        self.state_n, self.state_s = self._monthly(s, month, logp, keep, 2)
        # A fixed prior for the state level (it only matters where a window holds no sale at
        # all): a mean over the data would carry later prices into early features.
        self.fallback = np.full(2, PRIOR_LOG_PRICE)
        self._cum: dict[str, F64] | None = None

    def _monthly(
        self, group: I64, month: I64, logp: F64, keep: NDArray[np.bool_], n_groups: int
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        ok = keep & (group >= 0)
        flat = group[ok] * self.n_months + month[ok]
        size = max(n_groups, 1) * self.n_months
        n = np.bincount(flat, minlength=size).astype(np.float32)
        total = np.bincount(flat, weights=logp[ok], minlength=size).astype(np.float32)
        return n.reshape(-1, self.n_months), total.reshape(-1, self.n_months)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cum"] = None  # rebuilt on first use: the artifact stays small
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _cumulative(self) -> dict[str, F64]:
        if self._cum is None:
            cum: dict[str, F64] = {}
            for name in ("loc_n", "loc_s", "dist_n", "dist_s", "state_n", "state_s"):
                monthly = getattr(self, name)
                c = np.zeros((monthly.shape[0], monthly.shape[1] + 1), dtype=np.float64)
                np.cumsum(monthly, axis=1, dtype=np.float64, out=c[:, 1:])
                cum[name] = c
            self._cum = cum
        return self._cum

    def _window(self, name: str, group: I64, m_eff: I64, width: int) -> tuple[F64, F64]:
        cum = self._cumulative()
        b = np.clip(m_eff, 0, self.n_months)
        a = np.clip(b - width, 0, self.n_months)
        g = np.where(group >= 0, group, 0)
        n = cum[name + "_n"][g, b] - cum[name + "_n"][g, a]
        s = cum[name + "_s"][g, b] - cum[name + "_s"][g, a]
        unknown = group < 0
        n[unknown] = 0.0
        s[unknown] = 0.0
        return n, s

    def levels(
        self, loc_group: I64, dist_group: I64, strata: NDArray[np.bool_], m_eff: I64, width: int
    ) -> dict[str, F64]:
        """Shrunk levels: state (to the all-time mean), district (to state), locality (to
        district), over the `width` months before `m_eff` (held at the last months of data
        when `m_eff` is past them)."""
        s = strata.astype(np.int64)
        n_st, s_st = self._window("state", s, m_eff, width)
        state = (s_st + K_STATE * self.fallback[s]) / (n_st + K_STATE)
        n_d, s_d = self._window("dist", dist_group, m_eff, width)
        dist = (s_d + K_DISTRICT * state) / (n_d + K_DISTRICT)
        n_l, s_l = self._window("loc", loc_group, m_eff, width)
        loc = (s_l + K_LOCALITY * dist) / (n_l + K_LOCALITY)
        return {"state": state, "dist": dist, "loc": loc, "n_loc": n_l, "n_dist": n_d}


@dataclass(slots=True)
class Rows:
    """What the feature matrix is built from, one entry per row (sale or subject)."""

    loc_group: I64  # locality index * 2 + strata, -1 unknown
    dist_group: I64  # district index * 2 + strata, -1 unknown
    strata: NDArray[np.bool_]
    month: I64  # month of the sale / asOf (not capped)
    m_eff: I64  # first month NOT visible to the row's levels
    day: I64  # ordinal of the sale / asOf
    area_m2: F64
    zoning: F64  # category codes, NaN unknown
    nature: F64
    purpose: F64
    district: F64
    latitude: F64
    longitude: F64
    street_s: F64  # sum / count of earlier residuals on the same street (x strata)
    street_n: F64
    building_s: F64  # same for the strata building (street + house number)
    building_n: F64
    prev1_logp: F64  # NaN when none
    prev1_day: F64
    prev2_logp: F64
    prev2_day: F64
    n_prev: F64


FEATURE_NAMES: list[str] = [
    "month",
    "is_strata",
    "log_area_m2",
    "zoning",
    "nature",
    "primary_purpose",
    "district",
    "latitude",
    "longitude",
    "ref_level",
    "log_locality_sales_12m",
    "locality_3m_minus_ref",
    "locality_36m_minus_ref",
    "district_12m_minus_ref",
    "district_3m_minus_12m",
    "state_12m_minus_ref",
    "state_3m_minus_12m",
    "street_residual",
    "log_street_sales",
    "building_residual",
    "log_building_sales",
    "prev1_indexed_minus_ref",
    "prev1_raw_minus_ref",
    "prev1_years_ago",
    "prev2_indexed_minus_ref",
    "prev2_years_ago",
    "n_previous_sales",
]
CATEGORICAL = frozenset({"zoning", "nature", "primary_purpose", "district"})


def feature_matrix(levels: Levels, rows: Rows) -> tuple[NDArray[np.float64], F64]:
    """(X, ref): the features of `rows` and the reference level the target is relative to."""
    by_width = {
        w: levels.levels(rows.loc_group, rows.dist_group, rows.strata, rows.m_eff, w)
        for w in WINDOWS
    }
    l12 = by_width[REF_WINDOW]
    ref = l12["loc"]

    def indexed(prev_logp: F64, prev_day: F64) -> F64:
        """A previous sale brought to the row's month with the locality (shrunk) index."""
        known = ~np.isnan(prev_day)
        pm = month_index(np.where(known, prev_day, 0).astype(np.int64)) + 1
        pm = np.minimum(pm, rows.m_eff)
        then = levels.levels(rows.loc_group, rows.dist_group, rows.strata, pm, REF_WINDOW)["loc"]
        # (prev - level then) + level now - ref, and the level now *is* ref:
        return np.where(known, prev_logp - then, np.nan)

    adj1 = indexed(rows.prev1_logp, rows.prev1_day)
    adj2 = indexed(rows.prev2_logp, rows.prev2_day)
    street = rows.street_s / (rows.street_n + K_STREET)
    building = rows.building_s / (rows.building_n + K_STREET)
    area = np.where(rows.area_m2 > 0, rows.area_m2, np.nan)
    columns = [
        rows.month.astype(np.float64),
        rows.strata.astype(np.float64),
        np.log(area),
        rows.zoning,
        rows.nature,
        rows.purpose,
        rows.district,
        rows.latitude,
        rows.longitude,
        ref,
        np.log1p(l12["n_loc"]),
        by_width[3]["loc"] - ref,
        by_width[36]["loc"] - ref,
        l12["dist"] - ref,
        by_width[3]["dist"] - l12["dist"],
        l12["state"] - ref,
        by_width[3]["state"] - l12["state"],
        street,
        np.log1p(rows.street_n),
        np.where(rows.building_n > 0, building, np.nan),
        np.log1p(rows.building_n),
        adj1,
        rows.prev1_logp - ref,
        (rows.day - rows.prev1_day) / DAYS_PER_YEAR,
        adj2,
        (rows.day - rows.prev2_day) / DAYS_PER_YEAR,
        rows.n_prev,
    ]
    return np.column_stack(columns), ref


# -- keyed residual sums (street, building) -------------------------------------------------
# A key is a street (locality x street name x strata) or a strata building (+ house number),
# -1 when the row has none. The sums are of earlier sales' residuals (log price minus their
# own in-sample `ref`), so a row's own price never enters them.


def keyed_table(keys: I64, values: F64) -> tuple[I64, F64, F64]:
    """(sorted distinct keys, sum of `values` per key, count per key); key -1 left out."""
    ok = keys >= 0
    uniq, inverse = np.unique(keys[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=values[ok], minlength=len(uniq)).astype(np.float64)
    counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    return uniq.astype(np.int64), sums, counts


def lookup(uniq: I64, sums: F64, counts: F64, query_keys: I64) -> tuple[F64, F64]:
    """Sum and count of a `keyed_table` for `query_keys` (0, 0 for an unknown key or -1)."""
    if len(uniq) == 0:
        z = np.zeros(len(query_keys))
        return z, z.copy()
    pos = np.clip(np.searchsorted(uniq, query_keys), 0, len(uniq) - 1)
    hit = (uniq[pos] == query_keys) & (query_keys >= 0)
    return np.where(hit, sums[pos], 0.0), np.where(hit, counts[pos], 0.0)


def keyed_sums(known_keys: I64, values: F64, query_keys: I64) -> tuple[F64, F64]:
    """Sum and count of `values` per key, looked up for `query_keys` (-1: none)."""
    return lookup(*keyed_table(known_keys, values), query_keys)


def expanding_sums(keys: I64, day: I64, values: F64) -> tuple[F64, F64]:
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
