"""Pure NumPy kernels of the monthly harmonisation: masked medians and the composite of one
block. No file or product knowledge here."""

from __future__ import annotations

import numpy as np

NODATA = 0
UINT16_MAX = np.iinfo(np.uint16).max


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


def to_uint16(median: np.ndarray) -> np.ndarray:
    """Round half up to uint16; NaN (no valid sample) becomes NODATA, valid values at least 1."""
    out = np.floor(np.nan_to_num(median, nan=0.0) + 0.5)
    out = np.clip(out, 1, UINT16_MAX)
    out[np.isnan(median)] = NODATA
    return out.astype(np.uint16)


def composite_block(boa: np.ndarray, lai: np.ndarray, boa_nodata: np.ndarray | None = None,
                    lai_nodata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The monthly composite of one block.

    ``boa``: float32 ``[bands, rows, cols, n]`` reflectance x 10000 of the n acquisitions of the
    month; ``lai``: ``[rows, cols, n]``. As the seed describes, a sample whose LAI is 0 (cloudy)
    is set to 0 in the BOA and left out of the median (left out is all that matters: its value never
    enters); so are samples flagged in ``boa_nodata`` (``[rows, cols, n]``, any band at NoData) or
    ``lai_nodata``. Returns the uint16 composite ``[bands, rows, cols]`` (0 where no clear sample)
    and the clear-sample count ``[rows, cols]``.
    """
    clear = np.isfinite(lai) & (lai != 0)
    if lai_nodata is not None:
        clear &= ~lai_nodata
    if boa_nodata is not None:
        clear &= ~boa_nodata
    median, count = masked_median(boa, clear[None], axis=-1)
    return to_uint16(median), count[0]
