"""Change-detection kernels: coherence, shift estimation, byte stretch, change rule. Pure NumPy/SciPy.

* Coherence (SNAP's Coherence operator; the flat-earth and topographic phase are removed before,
  in :mod:`.interferometry`):
  ``|sum s1 s2*| / sqrt(sum |s1|^2 sum |s2|^2)`` over a ``window_az`` x ``window_rg`` window of
  co-registered complex samples; NoData (NaN) samples are left out.
* Shift: phase correlation of two amplitude patches with a parabolic sub-pixel peak.
* Byte stretch (seed section 2.2.4.5): backscatter in dB mapped linearly from its
  ``low``..``high`` percentiles to 1..255, coherence 0..1 to 1..255; 0 is NoData.
* Change rule: a pixel changed when ``|10 log10(b2/b1)| >= change_db`` and its coherence is at
  most ``change_coherence`` (a backscatter change where the scattering also decorrelated).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def coherence(s1: np.ndarray, s2: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    valid = np.isfinite(s1) & np.isfinite(s2) & (s1 != 0) & (s2 != 0)
    a = np.where(valid, s1, 0)
    b = np.where(valid, s2, 0)
    cross = a * np.conj(b)
    kw = dict(size=window, mode="constant", cval=0.0)
    num_re = ndimage.uniform_filter(cross.real, **kw)
    num_im = ndimage.uniform_filter(cross.imag, **kw)
    p1 = ndimage.uniform_filter(np.abs(a) ** 2, **kw)
    p2 = ndimage.uniform_filter(np.abs(b) ** 2, **kw)
    with np.errstate(invalid="ignore", divide="ignore"):
        coh = np.hypot(num_re, num_im) / np.sqrt(p1 * p2)
    coh = np.clip(coh, 0.0, 1.0)
    coh[~valid] = np.nan
    return coh


def phase_correlation(ref: np.ndarray, sec: np.ndarray, upsample: int = 20) -> tuple[float, float, float]:
    """(d_row, d_col, peak) such that ``sec(r + d_row, c + d_col) ~ ref(r, c)``: the integer peak
    of the phase correlation, then the maximum of its DFT upsampled ``upsample`` times within
    one pixel around it (Guizar-Sicairos et al. 2008)."""
    a = np.nan_to_num(ref - np.nanmean(ref))
    b = np.nan_to_num(sec - np.nanmean(sec))
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa, fb = np.fft.fft2(a * win), np.fft.fft2(b * win)
    cross = np.conj(fa) * fb
    cross /= np.maximum(np.abs(cross), 1e-12)
    corr = np.real(np.fft.ifft2(cross))
    peak = np.unravel_index(np.argmax(corr), corr.shape)
    n0, n1 = corr.shape
    p0 = peak[0] - n0 if peak[0] > n0 // 2 else peak[0]
    p1 = peak[1] - n1 if peak[1] > n1 // 2 else peak[1]
    steps = np.arange(-upsample, upsample + 1) / upsample
    rows, cols = p0 + steps, p1 + steps
    k0, k1 = np.fft.fftfreq(n0) * n0, np.fft.fftfreq(n1) * n1
    kern_r = np.exp(2j * np.pi * np.outer(rows, k0) / n0)
    kern_c = np.exp(2j * np.pi * np.outer(k1, cols) / n1)
    fine = np.real(kern_r @ cross @ kern_c) / (n0 * n1)
    i, j = np.unravel_index(np.argmax(fine), fine.shape)
    return float(rows[i]), float(cols[j]), float(corr[peak])


def percentiles_db(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(10 * np.log10(v), [low, high])
    return float(lo), float(hi) if hi > lo else float(lo + 1e-6)


def stretch_db(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear backscatter to bytes 1..255 between the dB limits; 0 where NoData."""
    ok = np.isfinite(values) & (values > 0)
    out = np.zeros(values.shape, np.uint8)
    db = 10 * np.log10(np.where(ok, values, 1.0))
    out[ok] = np.clip(np.rint(1 + (db[ok] - lo) / (hi - lo) * 254), 1, 255).astype(np.uint8)
    return out


def stretch_coherence(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    out = np.zeros(values.shape, np.uint8)
    out[ok] = np.clip(np.rint(1 + np.clip(values[ok], 0, 1) * 254), 1, 255).astype(np.uint8)
    return out


def change_mask(b1: np.ndarray, b2: np.ndarray, coh: np.ndarray, change_db: float, max_coherence: float) -> np.ndarray:
    """1 = change, 0 = no change, 255 = NoData."""
    ok = np.isfinite(b1) & np.isfinite(b2) & np.isfinite(coh) & (b1 > 0) & (b2 > 0)
    out = np.full(b1.shape, 255, np.uint8)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(10 * np.log10(b2 / b1))
    out[ok] = ((ratio[ok] >= change_db) & (coh[ok] <= max_coherence)).astype(np.uint8)
    return out
