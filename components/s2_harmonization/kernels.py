"""Pure NumPy kernels of the monthly harmonisation: the composite of one block (masked medians
from ``components.common.medians``). No file or product knowledge here."""

from __future__ import annotations

import numpy as np

from components.common.medians import masked_median

NODATA = 0
UINT16_MAX = np.iinfo(np.uint16).max


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
