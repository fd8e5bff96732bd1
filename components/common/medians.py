"""Medians over the valid samples of an axis (pure NumPy). Shared by the monthly composites
(``s2_harmonization``) and the TimeSen2Crop dataset loader (``timesen2crop``), which must not
import each other both ways."""

from __future__ import annotations

import numpy as np


def masked_median(values: np.ndarray, valid: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``values`` along ``axis`` over the samples where ``valid`` is true.

    Returns ``(median, count)``: ``median`` is float32 (NaN where no sample is valid; the mean of
    the two middle samples for an even count, like ``numpy.median``), ``count`` the number of
    valid samples (in the shape of ``valid`` without ``axis``). ``valid`` must broadcast to ``values``.
    """
    values = np.asarray(values, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    valid = valid.reshape((1,) * (values.ndim - valid.ndim) + valid.shape)
    n = values.shape[axis]
    if n == 0:
        shape = list(values.shape)
        del shape[axis]
        return np.full(shape, np.nan, np.float32), np.zeros(shape, np.int64)
    ordered = np.where(valid, values, np.float32(np.inf))
    ordered.sort(axis=axis)
    count = valid.sum(axis=axis, keepdims=True)  # on the mask as given (e.g. one plane for all bands)
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.minimum(count // 2, n - 1)
    a = np.take_along_axis(ordered, lo, axis=axis)
    b = np.take_along_axis(ordered, hi, axis=axis)
    with np.errstate(invalid="ignore"):
        median = (a + b) * np.float32(0.5)
    median = np.where(count > 0, median, np.float32(np.nan))
    return np.squeeze(median, axis=axis), np.squeeze(count, axis=axis)
