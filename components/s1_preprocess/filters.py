"""Speckle filters with SNAP's definitions (Speckle-Filter operator), on calibrated intensity.

Pure NumPy/SciPy, array in / array out; NaN is NoData (never used, and kept). Every filter
works on a block that carries a margin of :func:`halo` rows/columns; callers crop it. Windows are
clipped at the image edges and NoData samples are left out of every statistic, as in SNAP.

* ``Boxcar``: mean of the valid samples of a ``filter_size_x`` x ``filter_size_y`` window.
* ``Median``: median of the window (invalid samples replaced by the window mean first).
* ``Lee``: ``cu = 1/sqrt(ENL)``, ``ci = std/mean`` (sample variance, n-1); ``mean`` where
  ``ci < cu``, else ``w = 1 - cu^2/ci^2`` and ``w * centre + (1 - w) * mean``.
* ``Frost``: weights ``exp(-D * var/mean^2 * r)`` with ``r`` the distance to the centre.
* ``Gamma Map``: ``mean`` where ``ci <= cu``, the centre where ``ci >= sqrt(2) cu``, otherwise the
  MAP estimate ``(b mean + sqrt(mean^2 b^2 + 4 alpha ENL mean centre)) / (2 alpha)`` with
  ``alpha = (1 + cu^2)/(ci^2 - cu^2)``, ``b = alpha - ENL - 1``.
* ``Refined Lee`` (Lee 1981): 7x7 window, 3x3 sub-window means, the strongest of four edge
  directions, the edge-aligned half window (of eight) on the centre's side, then the MMSE
  estimate on its samples with noise variance ``1/ENL``.
* ``Lee Sigma`` (Lee et al. 2009, SNAP defaults 7x7 window, 3x3 target window, sigma 0.9, 1
  look): point targets (a bright cluster above the 98th percentile of the block with more than 5
  of the 9 target-window samples) keep their value; otherwise an MMSE estimate on the target
  window gives the a-priori mean, the window samples within its sigma range
  ``[I1, I2] x mean`` are kept, and the MMSE estimate on them (noise ``sigma_vp``) is the result.
  Window border pixels of the image use the MMSE estimate of the whole window. The tables of
  I1, I2 and sigma_vp are those of the paper (intensity, 1 to 4 looks).

``estimate_enl`` replaces the ENL by ``mean^2/var`` of the block, as SNAP does per tile.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

FILTERS = ("Lee Sigma", "Lee", "Refined Lee", "Frost", "Gamma Map", "Boxcar", "Median", "None")

# Lee Sigma sigma ranges for intensity: looks -> sigma -> (I1, I2, sigma_vp)
LEE_SIGMA_INTENSITY = {
    1: {0.5: (0.436, 1.920, 0.4057), 0.6: (0.343, 2.210, 0.4954), 0.7: (0.254, 2.582, 0.5911),
        0.8: (0.168, 3.094, 0.6966), 0.9: (0.084, 3.941, 0.8191)},
    2: {0.5: (0.582, 1.584, 0.2763), 0.6: (0.501, 1.755, 0.3388), 0.7: (0.418, 1.972, 0.4062),
        0.8: (0.327, 2.260, 0.4810), 0.9: (0.221, 2.744, 0.5699)},
    3: {0.5: (0.652, 1.458, 0.2222), 0.6: (0.580, 1.586, 0.2736), 0.7: (0.505, 1.751, 0.3280),
        0.8: (0.419, 1.965, 0.3892), 0.9: (0.313, 2.320, 0.4624)},
    4: {0.5: (0.694, 1.385, 0.1921), 0.6: (0.630, 1.495, 0.2348), 0.7: (0.560, 1.627, 0.2825),
        0.8: (0.480, 1.804, 0.3354), 0.9: (0.378, 2.094, 0.3991)},
}
POINT_TARGET_PERCENTILE = 98.0
POINT_TARGET_CLUSTER = 5  # more than this many bright samples in the target window
REFINED_LEE_WINDOW = 7


@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """The speckle filter and its parameters, named as SNAP's Speckle-Filter operator."""

    name: str = "Lee Sigma"
    filter_size_x: int = 3
    filter_size_y: int = 3
    damping_factor: int = 2
    enl: float = 1.0
    estimate_enl: bool = False
    num_looks: int = 1
    window_size: int = 7
    target_window_size: int = 3
    sigma: float = 0.9

    def halo(self) -> int:
        if self.name == "None":
            return 0
        if self.name == "Lee Sigma":
            return self.window_size // 2
        if self.name == "Refined Lee":
            return REFINED_LEE_WINDOW // 2
        return max(self.filter_size_x, self.filter_size_y) // 2


def halo(spec: FilterSpec) -> int:
    return spec.halo()


def apply(x: np.ndarray, spec: FilterSpec, edges: tuple[bool, bool, bool, bool] = (True,) * 4,
          stats: dict | None = None) -> np.ndarray:
    """Filter a block (float, NaN = NoData). ``edges`` (top, bottom, left, right): whether each
    side of the block is an edge of the image (used by Lee Sigma's border rule). ``stats``: the
    block statistics per pixel (arrays shaped as ``x``: "z98", Lee Sigma's point-target
    threshold, and "enl", the estimated ENL) when the caller computes them on a fixed tiling of
    the image; by default they are those of the block (:func:`block_stats`)."""
    if spec.name == "None":
        return x
    x = np.asarray(x, np.float64)
    valid = np.isfinite(x)
    if not valid.any():
        return x.copy()
    stats = stats or {}
    enl = (stats["enl"] if "enl" in stats else _estimate_enl(x, valid)) if spec.estimate_enl else float(spec.enl)
    if spec.name == "Boxcar":
        out = _boxcar(x, valid, (spec.filter_size_y, spec.filter_size_x))
    elif spec.name == "Median":
        out = _median(x, valid, (spec.filter_size_y, spec.filter_size_x))
    elif spec.name == "Lee":
        out = _lee(x, valid, (spec.filter_size_y, spec.filter_size_x), enl)
    elif spec.name == "Frost":
        out = _frost(x, valid, (spec.filter_size_y, spec.filter_size_x), spec.damping_factor)
    elif spec.name == "Gamma Map":
        out = _gamma_map(x, valid, (spec.filter_size_y, spec.filter_size_x), enl)
    elif spec.name == "Refined Lee":
        out = _refined_lee(x, valid, enl)
    elif spec.name == "Lee Sigma":
        out = _lee_sigma(x, valid, spec, edges, stats.get("z98"))
    else:
        raise ValueError(f"unknown speckle filter {spec.name!r}")
    out[~valid] = np.nan
    return out


# -- window statistics ----------------------------------------------------------------------

def _window_sums(x0: np.ndarray, valid: np.ndarray, size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, sum, sum of squares) of the valid samples of each window (zero outside)."""
    area = float(size[0] * size[1])
    kw = dict(size=size, mode="constant", cval=0.0)
    n = ndimage.uniform_filter(valid.astype(np.float64), **kw) * area
    s = ndimage.uniform_filter(x0, **kw) * area
    ss = ndimage.uniform_filter(x0 * x0, **kw) * area
    return np.rint(n), s, ss


def _mean_var(x: np.ndarray, valid: np.ndarray, size):
    x0 = np.where(valid, x, 0.0)
    n, s, ss = _window_sums(x0, valid, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = np.where(n > 1, (ss - s * mean) / (n - 1), 0.0)
    return n, mean, np.maximum(var, 0.0)


def _estimate_enl(x: np.ndarray, valid: np.ndarray) -> float:
    v = x[valid]
    m, m2 = v.mean(), (v * v).mean()
    return float(m * m / (m2 - m * m)) if m2 > m * m and m != 0 else 1.0


# -- the simple filters ---------------------------------------------------------------------

def _boxcar(x, valid, size):
    _, mean, _ = _mean_var(x, valid, size)
    return mean


def _median(x, valid, size):
    filled = np.where(valid, x, _boxcar(x, valid, size))
    filled = np.where(np.isfinite(filled), filled, 0.0)
    return ndimage.median_filter(filled, size=size, mode="nearest")


def _lee(x, valid, size, enl):
    _, mean, var = _mean_var(x, valid, size)
    cu2 = 1.0 / enl
    with np.errstate(invalid="ignore", divide="ignore"):
        ci2 = var / (mean * mean)
        w = 1.0 - cu2 / ci2
    out = w * x + (1.0 - w) * mean
    flat = ~(ci2 >= cu2) | (mean <= 0) | (var <= 0)
    return np.where(flat, mean, out)


def _frost(x, valid, size, damping):
    _, mean, var = _mean_var(x, valid, size)
    x0 = np.where(valid, x, 0.0)
    hy, hx = size[0] // 2, size[1] // 2
    dist = np.hypot(*np.mgrid[-hy:hy + 1, -hx:hx + 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        k = damping * var / (mean * mean)
    k = np.where(np.isfinite(k), k, 0.0)
    num = np.zeros_like(x0)
    den = np.zeros_like(x0)
    for d in np.unique(np.round(dist, 9)):
        ring = (np.abs(dist - d) < 1e-6).astype(np.float64)
        weight = np.exp(-k * d)
        num += weight * ndimage.correlate(x0, ring, mode="constant", cval=0.0)
        den += weight * ndimage.correlate(valid.astype(np.float64), ring, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _gamma_map(x, valid, size, enl):
    _, mean, var = _mean_var(x, valid, size)
    cu2 = 1.0 / enl
    cmax2 = 2.0 * cu2
    with np.errstate(invalid="ignore", divide="ignore"):
        ci2 = var / (mean * mean)
        alpha = (1.0 + cu2) / (ci2 - cu2)
        b = alpha - enl - 1.0
        d = mean * mean * b * b + 4.0 * alpha * enl * mean * x
        est = (b * mean + np.sqrt(np.maximum(d, 0.0))) / (2.0 * alpha)
    out = np.where(ci2 <= cu2, mean, np.where(ci2 >= cmax2, x, est))
    return np.where(mean > 0, out, mean)


# -- Refined Lee ----------------------------------------------------------------------------

def _refined_lee_masks() -> list[np.ndarray]:
    """The eight edge-aligned 7x7 windows: four half planes (incl. the centre line) and four
    triangles, in the order (direction 0 deg, 45, 90, 135) x (side -, side +)."""
    r = REFINED_LEE_WINDOW // 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    masks = []
    for proj in (xx, xx + yy, yy, xx - yy):  # normal of an edge at 0 (vertical), 45, 90, 135 deg
        masks.append((proj <= 0).astype(np.float64))
        masks.append((proj >= 0).astype(np.float64))
    return masks


def _refined_lee(x, valid, enl):
    x0 = np.where(valid, x, 0.0)
    sv2 = 1.0 / enl
    # 3x3 sub-window means on a 3x3 grid with step 2 around each pixel
    m3 = ndimage.uniform_filter(x0, size=3, mode="constant")
    c3 = ndimage.uniform_filter(valid.astype(np.float64), size=3, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        m3 = np.where(c3 > 0, m3 / c3, 0.0)

    def sub(dy, dx):
        return ndimage.shift(m3, (-2 * dy, -2 * dx), order=0, mode="constant", cval=0.0)

    s = {(dy, dx): sub(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    # gradients across the four directions (vertical edge, 45, horizontal edge, 135)
    g = [np.abs((s[(-1, 1)] + s[(0, 1)] + s[(1, 1)]) - (s[(-1, -1)] + s[(0, -1)] + s[(1, -1)])),
         np.abs((s[(0, 1)] + s[(1, 1)] + s[(1, 0)]) - (s[(-1, 0)] + s[(-1, -1)] + s[(0, -1)])),
         np.abs((s[(1, -1)] + s[(1, 0)] + s[(1, 1)]) - (s[(-1, -1)] + s[(-1, 0)] + s[(-1, 1)])),
         np.abs((s[(0, -1)] + s[(1, -1)] + s[(1, 0)]) - (s[(-1, 0)] + s[(-1, 1)] + s[(0, 1)]))]
    direction = np.argmax(np.stack(g), axis=0)
    # side: the half whose sub-window mean is closer to the centre sub-window
    pairs = [((0, -1), (0, 1)), ((-1, -1), (1, 1)), ((-1, 0), (1, 0)), ((-1, 1), (1, -1))]
    centre = s[(0, 0)]
    choice = np.zeros(x.shape, np.int64)
    for k, (neg, pos) in enumerate(pairs):
        plus = np.abs(centre - s[pos]) < np.abs(centre - s[neg])
        sel = direction == k
        choice[sel] = 2 * k + plus[sel]
    out = np.full(x.shape, np.nan)
    vf = valid.astype(np.float64)
    for k, mask in enumerate(_refined_lee_masks()):
        sel = choice == k
        if not sel.any():
            continue
        n = ndimage.correlate(vf, mask, mode="constant")
        s1 = ndimage.correlate(x0, mask, mode="constant")
        s2 = ndimage.correlate(x0 * x0, mask, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n
            var = np.where(n > 1, (s2 - s1 * mean) / (n - 1), 0.0)
            varx = np.maximum((var - mean * mean * sv2) / (1.0 + sv2), 0.0)
            b = np.where(var > 0, varx / var, 0.0)
        est = mean + b * (x - mean)
        out[sel] = est[sel]
    return out


# -- Lee Sigma ------------------------------------------------------------------------------

def lee_sigma_constants(num_looks: int, sigma: float) -> tuple[float, float, float, float]:
    """(I1, I2, sigma_v^2, sigma_vp^2) for intensity data."""
    try:
        i1, i2, svp = LEE_SIGMA_INTENSITY[int(num_looks)][round(float(sigma), 1)]
    except KeyError:
        raise ValueError(f"Lee Sigma has no table for {num_looks} looks and sigma {sigma}") from None
    return i1, i2, 1.0 / num_looks, svp * svp


def _mmse(x, mean, var, sv2):
    with np.errstate(invalid="ignore", divide="ignore"):
        varx = np.maximum((var - mean * mean * sv2) / (1.0 + sv2), 0.0)
        b = np.where(var > 0, varx / var, 0.0)
    return (1.0 - b) * mean + b * x


def _lee_sigma(x, valid, spec: FilterSpec, edges, z98=None):
    from . import _accel

    i1, i2, sv2, svp2 = lee_sigma_constants(spec.num_looks, spec.sigma)
    win, tw = spec.window_size, spec.target_window_size
    h = win // 2
    # point targets
    if z98 is None:
        z98 = np.percentile(x[valid], POINT_TARGET_PERCENTILE)
    with np.errstate(invalid="ignore"):
        bright = valid & (x > z98)
    cluster = ndimage.uniform_filter(bright.astype(np.float32), size=tw, mode="constant") * (tw * tw)
    seeds = bright & (np.rint(cluster) > POINT_TARGET_CLUSTER)
    point = bright & (ndimage.maximum_filter(seeds.view(np.uint8), size=tw, mode="constant") > 0) \
        if seeds.any() else np.zeros(x.shape, bool)
    if _accel.available():
        out = _accel.lee_sigma(x, i1, i2, sv2, svp2, win, tw)
    else:
        # a-priori mean from the target window, then the samples within its sigma range
        _, tmean, tvar = _mean_var(x, valid, (tw, tw))
        prior = _mmse(x, tmean, tvar, sv2)
        n, s, ss = sigma_range_sums(np.where(valid, x, 0.0), valid, prior * i1, prior * i2, win)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            var = np.where(n > 1, (ss - s * mean) / (n - 1), 0.0)
        out = np.where(n > 0, _mmse(x, mean, np.maximum(var, 0.0), svp2), x)
    # image border: MMSE estimate over the whole (clipped) window
    top, bottom, left, right = edges
    rows, cols = x.shape
    for flag, sl_in, sl_out in ((top, np.s_[:3 * h, :], np.s_[:h, :]),
                                (bottom, np.s_[max(0, rows - 3 * h):, :], np.s_[-h:, :]),
                                (left, np.s_[:, :3 * h], np.s_[:, :h]),
                                (right, np.s_[:, max(0, cols - 3 * h):], np.s_[:, -h:])):
        if not flag or h == 0:
            continue
        xs, vs = x[sl_in], valid[sl_in]
        _, wmean, wvar = _mean_var(xs, vs, (win, win))
        est = _mmse(xs, wmean, wvar, sv2)
        out[sl_out] = (est[:h] if sl_out[0] == slice(None, h) else est[-h:]) if sl_out[1] == slice(None) \
            else (est[:, :h] if sl_out[1] == slice(None, h) else est[:, -h:])
    out[point] = x[point]
    return out


def block_stats(x: np.ndarray, spec: FilterSpec) -> dict:
    """The statistics a filter takes from a whole block rather than a window: Lee Sigma's point
    target threshold (98th percentile) and, with ``estimate_enl``, the ENL (mean^2 / var)."""
    valid = np.isfinite(x)
    out = {}
    if not valid.any():
        return out
    if spec.name == "Lee Sigma":
        out["z98"] = float(np.percentile(x[valid], POINT_TARGET_PERCENTILE))
    if spec.estimate_enl and spec.name in ("Lee", "Refined Lee", "Gamma Map"):
        out["enl"] = _estimate_enl(x, valid)
    return out


def sigma_range_sums(x0: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray, win: int):
    """(count, sum, sum of squares) of the samples of each ``win`` x ``win`` window whose value
    lies in [lo, hi] of the window's centre pixel. Uses the compiled kernel when available."""
    from . import _accel

    if _accel.available():
        return _accel.sigma_range_sums(x0, valid, lo, hi, win)
    h = win // 2
    rows, cols = x0.shape
    pad = np.pad(np.where(valid, x0, np.nan), h, constant_values=np.nan)
    n = np.zeros((rows, cols))
    s = np.zeros((rows, cols))
    ss = np.zeros((rows, cols))
    m = np.empty((rows, cols), bool)
    with np.errstate(invalid="ignore"):
        for dy in range(win):
            for dx in range(win):
                v = pad[dy:dy + rows, dx:dx + cols]
                np.greater_equal(v, lo, out=m)
                m &= v <= hi
                t = np.where(m, v, 0.0)
                s += t
                ss += t * t
                n += m
    return n, s, ss


def describe(spec: FilterSpec) -> str:
    if spec.name == "Lee Sigma":
        return (f"Lee Sigma {spec.window_size}x{spec.window_size}, target {spec.target_window_size}x"
                f"{spec.target_window_size}, sigma {spec.sigma}, {spec.num_looks} look(s)")
    if spec.name in ("None", "Refined Lee"):
        return spec.name
    extra = f", damping {spec.damping_factor}" if spec.name == "Frost" else ""
    return f"{spec.name} {spec.filter_size_x}x{spec.filter_size_y}{extra}"

