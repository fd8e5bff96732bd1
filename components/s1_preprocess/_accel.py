"""Optional compiled kernels (Numba) for the loops NumPy cannot vectorise cheaply.

Each kernel here computes exactly what its NumPy counterpart in :mod:`.filters` computes (a test
compares them); the NumPy version is used when Numba is not installed or when
``S1_DISABLE_NUMBA=1``. Lee Sigma's sigma-range selection (a 7x7 window with per-pixel bounds)
costs about 49 x 8 array passes in NumPy; compiled, one pass.
"""

from __future__ import annotations

import functools
import os

import numpy as np


@functools.lru_cache(maxsize=1)
def _kernels():
    if os.environ.get("S1_DISABLE_NUMBA", "").strip() in ("1", "true", "yes"):
        return None
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(parallel=True, cache=True, fastmath=False)
    def sigma_sums(pad, lo, hi, win):  # pragma: no cover - compiled
        rows, cols = lo.shape
        n = np.zeros((rows, cols))
        s = np.zeros((rows, cols))
        ss = np.zeros((rows, cols))
        for r in numba.prange(rows):
            for c in range(cols):
                a, b = lo[r, c], hi[r, c]
                cn = 0.0
                cs = 0.0
                css = 0.0
                for dy in range(win):
                    for dx in range(win):
                        v = pad[r + dy, c + dx]
                        if v >= a and v <= b:  # NaN compares false
                            cn += 1.0
                            cs += v
                            css += v * v
                n[r, c] = cn
                s[r, c] = cs
                ss[r, c] = css
        return n, s, ss

    return {"sigma_sums": sigma_sums}


def available() -> bool:
    return _kernels() is not None


def sigma_range_sums(x0, valid, lo, hi, win: int):
    h = win // 2
    pad = np.pad(np.where(valid, x0, np.nan), h, constant_values=np.nan)
    return _kernels()["sigma_sums"](np.ascontiguousarray(pad, np.float64),
                                    np.ascontiguousarray(lo, np.float64),
                                    np.ascontiguousarray(hi, np.float64), int(win))


@functools.lru_cache(maxsize=1)
def _lee_sigma_kernel():
    import numba

    @numba.njit(parallel=True, cache=True)
    def kernel(pad, i1, i2, sv2, svp2, win, tw):  # pragma: no cover - compiled
        # ``pad``: intensities >= 0, NoData and outside the image as -1 (never selected).
        # One output row at a time with the column loop innermost: the window sums then run
        # over contiguous memory and vectorise, and each pixel still adds its window samples in
        # the same order (dy, then dx) as a per-pixel loop would, so the sums are the same.
        h = win // 2
        ht = tw // 2
        rows = pad.shape[0] - 2 * h
        cols = pad.shape[1] - 2 * h
        out = np.empty((rows, cols))
        for r in numba.prange(rows):
            n = np.zeros(cols)
            s = np.zeros(cols)
            ss = np.zeros(cols)
            lo = np.empty(cols)
            hi = np.empty(cols)
            for dy in range(h - ht, h + ht + 1):
                for dx in range(h - ht, h + ht + 1):
                    q = pad[r + dy, dx:dx + cols]
                    for c in range(cols):
                        m = 1.0 if q[c] >= 0.0 else 0.0
                        n[c] += m
                        s[c] += m * q[c]
                        ss[c] += m * q[c] * q[c]
            for c in range(cols):
                v = pad[r + h, c + h]
                cn = n[c]
                if cn == 0.0:  # only around NoData, whose result is NaN anyway
                    lo[c] = 1.0
                    hi[c] = -1.0
                    continue
                mean = s[c] / cn
                var = (ss[c] - s[c] * mean) / (cn - 1.0) if cn > 1.0 else 0.0
                b = 0.0
                if var > 0.0:
                    varx = (var - mean * mean * sv2) / (1.0 + sv2)
                    b = varx / var if varx > 0.0 else 0.0
                prior = (1.0 - b) * mean + b * v
                lo[c] = prior * i1
                hi[c] = prior * i2
                n[c] = 0.0
                s[c] = 0.0
                ss[c] = 0.0
            for dy in range(win):
                for dx in range(win):
                    q = pad[r + dy, dx:dx + cols]
                    for c in range(cols):
                        m = 1.0 if (q[c] >= lo[c]) & (q[c] <= hi[c]) & (q[c] >= 0.0) else 0.0
                        n[c] += m
                        s[c] += m * q[c]
                        ss[c] += m * q[c] * q[c]
            for c in range(cols):
                v = pad[r + h, c + h]
                if v < 0.0:
                    out[r, c] = np.nan
                    continue
                cn = n[c]
                if cn == 0.0:
                    out[r, c] = v
                    continue
                mean = s[c] / cn
                var = (ss[c] - s[c] * mean) / (cn - 1.0) if cn > 1.0 else 0.0
                b = 0.0
                if var > 0.0:
                    varx = (var - mean * mean * svp2) / (1.0 + svp2)
                    b = varx / var if varx > 0.0 else 0.0
                out[r, c] = (1.0 - b) * mean + b * v
        return out

    return kernel


def lee_sigma(x, i1, i2, sv2, svp2, win: int, tw: int):
    """Lee Sigma without the point-target and image-border rules (applied by the caller)."""
    h = win // 2
    x = np.asarray(x, np.float64)
    # written straight into the padded array: no full-size temporaries
    pad = np.full((x.shape[0] + 2 * h, x.shape[1] + 2 * h), -1.0)
    np.maximum(x, 0.0, out=pad[h:h + x.shape[0], h:h + x.shape[1]], where=np.isfinite(x))
    return _lee_sigma_kernel()(pad, float(i1), float(i2), float(sv2), float(svp2), int(win), int(tw))


@functools.lru_cache(maxsize=1)
def _bilinear_kernel():
    import numba

    @numba.njit(parallel=True, cache=True)
    def kernel(src, rows, cols):  # pragma: no cover - compiled
        h, w = src.shape
        out = np.empty(rows.shape)
        for i in numba.prange(rows.shape[0]):
            for j in range(rows.shape[1]):
                r = rows[i, j]
                c = cols[i, j]
                if not (r >= 0.0 and c >= 0.0 and r <= h - 1 and c <= w - 1):
                    out[i, j] = np.nan
                    continue
                r0 = min(int(r), h - 2) if h > 1 else 0
                c0 = min(int(c), w - 2) if w > 1 else 0
                fr = r - r0
                fc = c - c0
                r1 = min(r0 + 1, h - 1)
                c1 = min(c0 + 1, w - 1)
                out[i, j] = ((1 - fr) * ((1 - fc) * src[r0, c0] + fc * src[r0, c1])
                             + fr * ((1 - fc) * src[r1, c0] + fc * src[r1, c1]))
        return out

    return kernel


def sample_bilinear(src, rows, cols):
    return _bilinear_kernel()(np.ascontiguousarray(src, np.float64), np.ascontiguousarray(rows, np.float64),
                              np.ascontiguousarray(cols, np.float64))
