"""Resampling kernels for integer scale factors: pure NumPy, no file or product knowledge.

Semantics follow SNAP's S2Resampling operator:
- downsampling (fine -> coarse, factor f): First takes the top-left sample of each f x f block;
  Min, Max, Mean and Median ignore NoData samples, and a block without valid samples is NoData;
- flag downsampling, for bit masks: FlagAnd / FlagOr combine the block's samples bitwise;
  FlagMedianAnd / FlagMedianOr set a bit set in more than half of the samples, and on a tie
  leave it clear (And) or set it (Or);
- upsampling (coarse -> fine) is done in ``sampling``: Nearest by index lookup, Bilinear and
  Bicubic by GDAL's warper, since they need neighbours across strips.
"""

from __future__ import annotations

import warnings

import numpy as np


def _blocks(a: np.ndarray, f: int) -> np.ndarray:
    """View of a (H*f, W*f) array as (H, W, f*f) blocks."""
    h, w = a.shape[0] // f, a.shape[1] // f
    return a[: h * f, : w * f].reshape(h, f, w, f).swapaxes(1, 2).reshape(h, w, f * f)


def downsample(a: np.ndarray, f: int, method: str, nodata: int | float = 0) -> np.ndarray:
    """Aggregate f x f blocks of a 2-D array with First, Min, Max, Mean or Median."""
    if f == 1:
        return a.copy()
    if method == "First":
        return a[::f, ::f][: a.shape[0] // f, : a.shape[1] // f].copy()
    blocks = _blocks(a, f)
    valid = blocks != nodata
    any_valid = valid.any(axis=2)
    if method == "Min":
        big = np.iinfo(a.dtype).max if a.dtype.kind in "ui" else np.inf
        out = np.where(valid, blocks, big).min(axis=2)
    elif method == "Max":
        small = np.iinfo(a.dtype).min if a.dtype.kind in "ui" else -np.inf
        out = np.where(valid, blocks, small).max(axis=2)
    elif method == "Mean":
        total = np.where(valid, blocks, 0).sum(axis=2, dtype=np.float64)
        out = total / np.maximum(valid.sum(axis=2), 1)
    elif method == "Median":
        if valid.all():
            out = np.median(blocks, axis=2)
        else:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NoData blocks
                out = np.nanmedian(np.where(valid, blocks.astype(np.float32), np.nan), axis=2)
    else:
        raise ValueError(f"unknown downsampling method {method}")
    out = np.where(any_valid, out, nodata)
    if a.dtype.kind in "ui":
        out = np.rint(out)
    return out.astype(a.dtype)


def downsample_flags(a: np.ndarray, f: int, method: str) -> np.ndarray:
    """Aggregate f x f blocks of an unsigned-integer bit mask (bool masks too)."""
    if f == 1:
        return a.copy()
    if method == "First":
        return downsample(a, f, "First")
    blocks = _blocks(a, f)
    if a.dtype == bool:
        counts = blocks.sum(axis=2)
        n = f * f
        if method == "FlagAnd":
            return counts == n
        if method == "FlagOr":
            return counts > 0
        if method == "FlagMedianAnd":
            return 2 * counts > n
        if method == "FlagMedianOr":
            return 2 * counts >= n
        raise ValueError(f"unknown flag downsampling method {method}")
    if method == "FlagAnd":
        return np.bitwise_and.reduce(blocks, axis=2)
    if method == "FlagOr":
        return np.bitwise_or.reduce(blocks, axis=2)
    out = np.zeros(blocks.shape[:2], dtype=a.dtype)
    for bit in range(a.dtype.itemsize * 8):
        out |= (downsample_flags((a >> bit) & 1 == 1, f, method).astype(a.dtype) << bit)
    return out

