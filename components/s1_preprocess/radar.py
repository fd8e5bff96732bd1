"""Radar-geometry processing, strip by strip: read, thermal noise, border noise, calibration,
multilook, speckle filter; the result is a float32 GeoTIFF in radar geometry (NaN = NoData) that
the geocoder samples. Memory is bounded by the strip (512 output rows plus the filter margin).

GRDs are processed on their own grid; an IW SLC sub-swath is first debursted (TOPS): the output
lines are a regular azimuth-time grid from the first valid line of the first burst to the last
valid line of the last burst, each taken from the burst that holds it, the overlap of two bursts
split at its middle (as SNAP's TOPSAR-Deburst); samples outside the burst's firstValidSample /
lastValidSample are NoData.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from components.common.cpus import usable_cpus

from . import filters
from .product import Image, S1Product, seconds_between
from .radiometry import (NoiseModel, border_trim_columns, border_trim_rows, calibrate, calibration_lut, denoise,
                         intensity)

log = logging.getLogger(__name__)

STRIP_ROWS = 512
# SLC: the block statistics of a filter (Lee Sigma's point-target percentile, an estimated ENL)
# come from tiles of this many multilooked pixels on a grid fixed to the whole sub-swath, so a
# window processed alone gives the same pixels as the whole sub-swath
STATS_TILE = 512
BORDER_CONTEXT = 1000  # samples from an image edge within which the border trim is evaluated


@dataclasses.dataclass
class RadarRaster:
    """A processed radar-geometry image and how its rows/columns relate to the product image."""

    path: str
    rows: int
    cols: int
    row0: float  # product image line of raster row 0 (centre of the first look)
    col0: float
    looks: tuple[int, int]  # (azimuth, range)
    t_first: float  # azimuth time (s since the image epoch) of raster row 0
    row_interval: float  # seconds between raster rows


@dataclasses.dataclass
class DeburstPlan:
    """Source line of every debursted line and the valid samples of that line."""

    source_line: np.ndarray
    first_valid: np.ndarray
    last_valid: np.ndarray
    t_first: float  # seconds since the image's first line time
    interval: float


def deburst_plan(image: Image) -> DeburstPlan:
    dt = image.azimuth_time_interval
    lpb = image.lines_per_burst
    starts, ends, spans = [], [], []
    for b in image.bursts:
        tb = seconds_between(image.first_line_time, b.azimuth_time)
        ok = np.flatnonzero(b.first_valid_sample >= 0)
        if ok.size == 0:
            continue
        spans.append((tb, ok[0], ok[-1], b))
        starts.append(tb + ok[0] * dt)
        ends.append(tb + ok[-1] * dt)
    if not spans:
        raise ValueError(f"{image}: no valid burst lines")
    t0, t1 = starts[0], ends[-1]
    n = int(np.floor((t1 - t0) / dt + 1e-6)) + 1
    times = t0 + np.arange(n) * dt
    # burst k owns [split_{k-1}, split_k), split at the middle of each overlap
    splits = [(ends[k] + starts[k + 1]) / 2 for k in range(len(spans) - 1)]
    owner = np.searchsorted(np.array(splits), times, side="right") if splits else np.zeros(n, np.int64)
    src = np.empty(n, np.int64)
    fv = np.empty(n, np.int64)
    lv = np.empty(n, np.int64)
    for k, (tb, v0, v1, b) in enumerate(spans):
        sel = owner == k
        local = np.clip(np.rint((times[sel] - tb) / dt).astype(np.int64), v0, v1)
        index = image.bursts.index(b)
        src[sel] = index * lpb + local
        fv[sel] = b.first_valid_sample[local]
        lv[sel] = b.last_valid_sample[local]
    return DeburstPlan(src, fv, lv, t0, dt)


def multilook(x: np.ndarray, ay: int, ax: int) -> np.ndarray:
    """Mean of the valid (finite) samples of each ay x ax block (NaN where none)."""
    if ay == 1 and ax == 1:
        return x
    h, w = x.shape[0] // ay, x.shape[1] // ax
    x = x[:h * ay, :w * ax].reshape(h, ay, w, ax)
    valid = np.isfinite(x)
    s = np.where(valid, x, 0.0).sum(axis=(1, 3))
    n = valid.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan)


def _raster_profile(rows, cols):
    # pixel-centre coordinates (not the identity) keep GDAL from warning about missing georeferencing
    return {"driver": "GTiff", "width": cols, "height": rows, "count": 1, "dtype": "float32",
            "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER", "nodata": None,
            "transform": Affine(1.0, 0.0, -0.5, 0.0, 1.0, -0.5)}


def process_grd(product: S1Product, image: Image, params, bounds, looks, dst: str, progress=None) -> RadarRaster:
    """Calibrated, noise-removed, filtered GRD intensity of the image window ``bounds``
    (r0, r1, c0, c1), multilooked by ``looks`` (azimuth, range). The window is widened to whole
    looks of the whole image's multilook grid, so that a pixel is the same whatever window (AoI,
    DEM height range) asked for it."""
    ay, ax = looks
    r0, c0 = bounds[0] // ay * ay, bounds[2] // ax * ax
    r1 = min(image.lines // ay, -(-bounds[1] // ay)) * ay
    c1 = min(image.samples // ax, -(-bounds[3] // ax)) * ax
    rows_ml, cols_ml = (r1 - r0) // ay, (c1 - c0) // ax
    kind = params.calibration.replace("DB", "")
    lut = calibration_lut(image, kind)
    noise = NoiseModel(image, product.ipf_version) if params.thermal_noise_removal else None
    spec = params.filter_spec()
    halo = spec.halo()
    border = params.border_noise_removal and params.border_limit > 0
    # columns read: widened to the image edge where the border trim needs it
    e0 = 0 if border and c0 < BORDER_CONTEXT else c0
    e1 = image.samples if border and c1 > image.samples - BORDER_CONTEXT else c1
    top = bottom = None
    if border and r0 < BORDER_CONTEXT:
        top = _column_trim(image, noise, params, 0, min(BORDER_CONTEXT, image.lines), e0, e1, True)
    if border and r1 > image.lines - BORDER_CONTEXT:
        bottom = _column_trim(image, noise, params, max(0, image.lines - BORDER_CONTEXT), image.lines, e0, e1, False)

    def strip(a0: int, a1: int) -> np.ndarray:
        s0, s1 = r0 + a0 * ay, r0 + a1 * ay
        dn = image.read(s0, e0, s1 - s0, e1 - e0)
        valid = dn != 0
        power = intensity(dn)
        rows = np.arange(s0, s1, dtype=np.float64)
        if noise is not None and not noise.empty:
            power = denoise(power, noise.rows(rows, e0, e1), valid)
        removed = ~valid
        if border:
            removed |= border_trim_rows(power, valid, params.border_limit, params.trim_threshold,
                                        left=(e0 == 0), right=(e1 == image.samples))
            for trim in (top, bottom):
                if trim is not None:
                    first, count, base = trim
                    g = rows[:, None]
                    removed |= (g >= base + first[None, :]) & (g < base + first[None, :] + count[None, :]) \
                        if trim is top else (g <= base - first[None, :]) & (g > base - first[None, :] - count[None, :])
        value = calibrate(power, lut.rows(rows, e0, e1))
        value[removed] = np.nan
        return multilook(value[:, c0 - e0:c1 - e0], ay, ax)

    _run_strips(strip, rows_ml, cols_ml, halo, spec, dst, edges=(r0 == 0, r1 >= image.lines,
                                                                c0 == 0, c1 >= image.samples), progress=progress)
    return RadarRaster(dst, rows_ml, cols_ml, r0 + (ay - 1) / 2, c0 + (ax - 1) / 2, looks,
                       (r0 + (ay - 1) / 2) * image.azimuth_time_interval, ay * image.azimuth_time_interval)


def _column_trim(image, noise, params, a, b, e0, e1, from_top):
    dn = image.read(a, e0, b - a, e1 - e0)
    valid = dn != 0
    power = intensity(dn)
    if noise is not None and not noise.empty:
        power = denoise(power, noise.rows(np.arange(a, b, dtype=np.float64), e0, e1), valid)
    first, count = border_trim_columns(power, valid, params.border_limit, params.trim_threshold, from_top)
    # top: removed lines a+first .. a+first+count-1; bottom: (b-1)-first down to (b-1)-first-count+1
    return (first, count, a) if from_top else (first, count, b - 1)


def process_slc(product: S1Product, image: Image, params, looks, dst: str, progress=None,
                plan: DeburstPlan | None = None, bounds=None) -> RadarRaster:
    """Debursted (IW) or plain (SM), calibrated, noise-removed, multilooked, filtered intensity
    of the debursted window ``bounds`` = (r0, r1, c0, c1) (default: all of it).

    The window is widened to whole looks of the whole image's multilook grid, so its pixels are
    those of the whole image processed at once; only its lines (so only the bursts holding them)
    and samples are read. A filter with block statistics reads more, whole :data:`STATS_TILE`
    tiles around the window, for those statistics, but filters only the window."""
    ay, ax = looks
    kind = params.calibration.replace("DB", "")
    lut = calibration_lut(image, kind)
    noise = NoiseModel(image, product.ipf_version) if params.thermal_noise_removal else None
    spec = params.filter_spec()
    plan = plan or plan_for(image)
    full_rows, full_cols = plan.source_line.size // ay, image.samples // ax
    r0, r1, c0, c1 = bounds if bounds is not None else (0, full_rows * ay, 0, full_cols * ax)
    m0, m1 = r0 // ay, min(full_rows, -(-r1 // ay))
    n0, n1 = c0 // ax, min(full_cols, -(-c1 // ax))
    rows_ml, cols_ml = m1 - m0, n1 - n0
    edges = (m0 == 0, m1 == full_rows, n0 == 0, n1 == full_cols)
    tiled = spec.name == "Lee Sigma" or (spec.estimate_enl and spec.name in ("Lee", "Refined Lee", "Gamma Map"))
    # multilooked region read: the window, or the whole tiles around it and its filter margin
    g0, g1, h0, h1 = m0, m1, n0, n1
    if tiled:
        t, halo = STATS_TILE, spec.halo()
        g0, g1 = max(0, m0 - halo) // t * t, min(full_rows, -(-(m1 + halo) // t) * t)
        h0, h1 = max(0, n0 - halo) // t * t, min(full_cols, -(-(n1 + halo) // t) * t)
        # a cropped measurement: nothing to read beyond its pixels (NoData takes no part in a statistic)
        held = data_bounds(image, plan)
        if held is not None:
            g0, g1 = max(g0, min(m0, held[0] // ay)), min(g1, max(m1, -(-held[1] // ay)))
            h0, h1 = max(h0, min(n0, held[2] // ax)), min(h1, max(n1, -(-held[3] // ax)))
    e0, e1 = h0 * ax, h1 * ax
    cols = np.arange(e0, e1)

    def strip(a0: int, a1: int) -> np.ndarray:
        k0, k1 = (g0 + a0) * ay, (g0 + a1) * ay
        lines = plan.source_line[k0:k1]
        s0, s1 = int(lines.min()), int(lines.max()) + 1
        block = image.read(s0, e0, s1 - s0, e1 - e0)[lines - s0]
        valid = (block != 0) & (cols[None, :] >= plan.first_valid[k0:k1, None]) \
            & (cols[None, :] <= plan.last_valid[k0:k1, None])
        power = intensity(block)
        rows = lines.astype(np.float64)
        if noise is not None and not noise.empty:
            power = denoise(power, noise.rows(rows, e0, e1), valid)
        value = calibrate(power, lut.rows(rows, e0, e1))
        value[~valid] = np.nan
        return multilook(value, ay, ax)

    if tiled:
        looked = dst + ".multilooked.tif"
        _run_strips(strip, g1 - g0, h1 - h0, 0, filters.FilterSpec(name="None"), looked, edges)
        try:
            _filter_tiled(looked, (g0, h0), (m0, m1, n0, n1), (full_rows, full_cols), dst, spec, progress)
        finally:
            Path(looked).unlink(missing_ok=True)
    else:
        _run_strips(strip, rows_ml, cols_ml, spec.halo(), spec, dst, edges=edges, progress=progress)
    return RadarRaster(dst, rows_ml, cols_ml, m0 * ay + (ay - 1) / 2, n0 * ax + (ax - 1) / 2, looks,
                       plan.t_first + (m0 * ay + (ay - 1) / 2) * plan.interval, ay * plan.interval)


def _filter_tiled(src: str, origin, window, full, dst: str, spec, progress=None) -> None:
    """Filter ``window`` (m0, m1, n0, n1, multilooked pixels of the whole image) of the multilooked
    raster ``src``, whose first pixel is ``origin`` and which holds the whole STATS_TILE tiles
    (of the grid fixed to the image) around the window and its filter margin; each pixel takes the
    block statistics of its tile."""
    t, halo = STATS_TILE, spec.halo()
    g0, h0 = origin
    m0, m1, n0, n1 = window
    full_rows, full_cols = full
    rows, cols = m1 - m0, n1 - n0
    with rasterio.open(src) as ds, rasterio.open(dst, "w", **_raster_profile(rows, cols)) as out:
        height, width = ds.height, ds.width
        stats = {}  # by tile of the image's grid
        for gi in range(g0 // t * t, g0 + height, t):
            for gj in range(h0 // t * t, h0 + width, t):
                i0, i1 = max(0, gi - g0), min(height, gi + t - g0)
                j0, j1 = max(0, gj - h0), min(width, gj + t - h0)
                block = ds.read(1, window=Window(j0, i0, j1 - j0, i1 - i0)).astype(np.float64)
                stats[gi // t, gj // t] = filters.block_stats(block, spec)
        keys = sorted({k for st in stats.values() for k in st})
        for s0 in range(0, rows, STRIP_ROWS):
            s1 = min(rows, s0 + STRIP_ROWS)
            a0, a1 = max(0, m0 - g0 + s0 - halo), min(height, m0 - g0 + s1 + halo)
            b0, b1 = max(0, n0 - h0 - halo), min(width, n1 - h0 + halo)
            data = ds.read(1, window=Window(b0, a0, b1 - b0, a1 - a0)).astype(np.float64)
            ti, tj = (g0 + np.arange(a0, a1)) // t, (h0 + np.arange(b0, b1)) // t
            per_pixel = {}
            for key in keys:
                table = np.full((ti[-1] - ti[0] + 1, tj[-1] - tj[0] + 1), np.nan)
                for (i, j), st in stats.items():
                    if key in st and ti[0] <= i <= ti[-1] and tj[0] <= j <= tj[-1]:
                        table[i - ti[0], j - tj[0]] = st[key]
                per_pixel[key] = table[(ti - ti[0])[:, None], (tj - tj[0])[None, :]]
            data = filters.apply(data, spec, edges=(g0 + a0 == 0, g0 + a1 == full_rows, h0 + b0 == 0,
                                                    h0 + b1 == full_cols), stats=per_pixel)
            r, c = m0 - g0 + s0 - a0, n0 - h0 - b0
            out.write(data[r:r + s1 - s0, c:c + cols].astype(np.float32), 1, window=Window(0, s0, cols, s1 - s0))
            if progress is not None:
                progress.advance()


def data_bounds(image: Image, plan: DeburstPlan) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1): the debursted lines and samples holding the image's pixels (all of them,
    unless the measurement is a crop); None when no debursted line comes from the crop."""
    if image.data_window is None:
        return 0, plan.source_line.size, 0, image.samples
    l0, l1, s0, s1 = image.data_window
    inside = np.flatnonzero((plan.source_line >= l0) & (plan.source_line < l1))
    if inside.size == 0:
        return None
    return int(inside[0]), int(inside[-1]) + 1, s0, s1


def intersect(a, b):
    """The intersection of two (r0, r1, c0, c1) windows, None when empty (or either is None)."""
    if a is None or b is None:
        return None
    r0, r1, c0, c1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None


@contextlib.contextmanager
def _reuse_freed_memory():
    """Keep freed strip arrays in the heap for the next strip (glibc only; elsewhere a no-op).

    Each strip allocates and frees a few dozen arrays of about 100 MB. glibc serves blocks that
    large with mmap and unmaps them on free, so every strip faults all its memory in again: on a
    busy 2-core machine that kernel time was as large as the arithmetic. Inside this block they
    come from the heap, which is not trimmed until the end."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 2 ** 31 - 1)
    try:
        yield
    finally:
        libc.mallopt(m_mmap_max, 65536)  # glibc's defaults
        libc.mallopt(m_trim_threshold, 128 * 1024)
        libc.malloc_trim(0)


def _run_strips(strip, rows: int, cols: int, halo: int, spec, dst: str, edges, progress=None):
    """Filter and write the strips made by ``strip(a0, a1)``. With a second CPU the next strip
    is read and calibrated in a worker thread while this one is filtered and written (NumPy, GDAL
    and the compiled kernels release the GIL); ``strip`` is still called one strip at a time, in
    order, so it needs no locking."""
    top_edge, bottom_edge, left_edge, right_edge = edges
    starts = list(range(0, rows, STRIP_ROWS))
    spans = [(max(0, s0 - halo), min(rows, s0 + STRIP_ROWS + halo)) for s0 in starts]
    pool = ThreadPoolExecutor(max_workers=1) if usable_cpus() > 1 and len(starts) > 1 else None
    pending = pool.submit(strip, *spans[0]) if pool is not None else None
    try:
        with _reuse_freed_memory(), rasterio.open(dst, "w", **_raster_profile(rows, cols)) as out:
            for k, s0 in enumerate(starts):
                s1 = min(rows, s0 + STRIP_ROWS)
                a0, a1 = spans[k]
                if pool is None:
                    data = strip(a0, a1)
                else:
                    data = pending.result()
                    pending = pool.submit(strip, *spans[k + 1]) if k + 1 < len(starts) else None
                if spec.name != "None":
                    data = filters.apply(data, spec, edges=(a0 == 0 and top_edge, a1 == rows and bottom_edge,
                                                            left_edge, right_edge))
                out.write(data[s0 - a0:s0 - a0 + (s1 - s0)].astype(np.float32), 1,
                          window=Window(0, s0, cols, s1 - s0))
                if progress is not None:
                    progress.advance()
    finally:
        if pool is not None:
            if pending is not None:
                pending.cancel()
            pool.shutdown(wait=True)


def strips(rows: int) -> int:
    return -(-rows // STRIP_ROWS)


def deburst_rows(image: Image, plan: DeburstPlan, a0: int, a1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Debursted lines a0:a1 of an SLC image: complex samples, validity, source lines."""
    a0, a1 = max(0, a0), min(plan.source_line.size, a1)
    lines = plan.source_line[a0:a1]
    s0, s1 = int(lines.min()), int(lines.max()) + 1
    block = image.read(s0, 0, s1 - s0, image.samples)[lines - s0]
    cols = np.arange(image.samples)
    valid = (block != 0) & (cols[None, :] >= plan.first_valid[a0:a1, None]) \
        & (cols[None, :] <= plan.last_valid[a0:a1, None])
    return block, valid, lines


def plan_for(image: Image) -> DeburstPlan:
    """The deburst plan of an IW SLC image, or the identity plan of an SM image."""
    if image.bursts:
        return deburst_plan(image)
    n = image.lines
    return DeburstPlan(np.arange(n), np.zeros(n, np.int64), np.full(n, image.samples - 1), 0.0,
                       image.azimuth_time_interval)


def filter_raster(src: str, dst: str, spec) -> None:
    """Speckle-filter a radar raster strip by strip (with the filter's margin)."""
    halo = spec.halo()
    with rasterio.open(src) as ds:
        rows, cols = ds.height, ds.width

        def strip(a0, a1):
            return ds.read(1, window=Window(0, a0, cols, a1 - a0)).astype(np.float64)

        _run_strips(strip, rows, cols, halo, spec, dst, edges=(True, True, True, True))
