"""Morphological post-processing of a crop-type map (uint8 labels, one NoData value).

* :func:`majority`: modal filter in a square window; NoData pixels do not vote and stay NoData;
  a pixel keeps its label when that label ties for the most frequent.
* :func:`sieve`: connected regions of one label smaller than a size are merged into their largest
  neighbouring region (GDAL's sieve filter); NoData is left alone.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter


def majority(labels: np.ndarray, size: int, nodata: int) -> np.ndarray:
    """Modal filter of ``labels`` (2-D uint8) in a ``size`` x ``size`` window (odd)."""
    if size <= 1:
        return labels.copy()
    valid = labels != nodata
    classes = np.unique(labels[valid])
    if len(classes) <= 1:
        return labels.copy()
    area = float(size * size)
    best = labels.copy()
    best_count = np.zeros(labels.shape, np.int32)
    own_count = np.zeros(labels.shape, np.int32)
    for c in classes:
        is_c = labels == c
        count = np.rint(uniform_filter(is_c.astype(np.float32), size, mode="constant", cval=0.0) * area).astype(np.int32)
        better = count > best_count
        best[better] = c
        best_count[better] = count[better]
        own_count[is_c] = count[is_c]
    out = np.where(own_count >= best_count, labels, best)
    out[~valid] = nodata
    return out.astype(labels.dtype)


def sieve(labels: np.ndarray, min_size: int, connectivity: int, nodata: int) -> np.ndarray:
    """Merge regions smaller than ``min_size`` pixels into their largest neighbour."""
    if min_size <= 1:
        return labels
    from rasterio.features import sieve as gdal_sieve

    valid = labels != nodata
    out = gdal_sieve(labels, size=int(min_size), connectivity=int(connectivity), mask=valid)
    out = np.asarray(out, labels.dtype)
    out[~valid] = nodata
    return out
