"""The 80% interval: split-conformal offsets per bin (Mondrian), shared by calibration at
training time and by every prediction.

Calibration takes the (10%, 90%) quantiles, finite-sample corrected, of log(price) minus
the prediction on the calibration window, separately for each bin of strata x "has a
previous sale" (the residual spread differs a lot between them); a bin with too few
residuals uses the pooled quantiles. A prediction adds its bin's offsets to its log price.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from app.ml.features import F64, I64

INTERVAL = (0.1, 0.9)
MIN_BIN = 200  # calibration residuals needed for a conformal bin of its own


def conformal_bin(strata: NDArray[np.bool_], has_prev: NDArray[np.bool_]) -> I64:
    """Bin 0..3 of each row: strata x has a previous sale."""
    return strata.astype(np.int64) * 2 + has_prev.astype(np.int64)


def offset_rows(strata: NDArray[np.bool_], has_prev: NDArray[np.bool_]) -> I64:
    """The row of the `conformal_offsets` table that applies to each row (row 0 is pooled)."""
    return conformal_bin(strata, has_prev) + 1


def conformal_quantiles(r: F64) -> tuple[float, float]:
    """The (10%, 90%) quantiles of residuals `r`, finite-sample corrected (r not empty)."""
    n = len(r)
    lo = max(0.0, min(1.0, np.floor((n + 1) * INTERVAL[0]) / n))
    hi = max(0.0, min(1.0, np.ceil((n + 1) * INTERVAL[1]) / n))
    return float(np.quantile(r, lo)), float(np.quantile(r, hi))


def conformal_offsets(residuals: F64, bins: I64) -> F64:
    """Split-conformal (10%, 90%) residual quantiles per bin; rows [pooled, bin 0..3].
    Clamped so that the interval always contains the point estimate. (Models trained since
    the caller classes of app/ml/classes.py keep these only as a fallback.)"""
    q = conformal_quantiles

    pooled = q(residuals) if len(residuals) else (-0.2, 0.2)
    out = np.empty((5, 2))
    out[0] = pooled
    for b in range(4):
        r = residuals[bins == b]
        out[b + 1] = q(r) if len(r) >= MIN_BIN else pooled
    out[:, 0] = np.minimum(out[:, 0], 0.0)
    out[:, 1] = np.maximum(out[:, 1], 0.0)
    return out
