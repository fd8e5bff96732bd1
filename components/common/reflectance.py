"""What unit a Sentinel-2 reflectance raster holds, and how to bring its values to reflectance.

One rule, shared by S2-CD (stacks given as input) and monthlycomposite (REFBOA images), decided
per raster from its band scale tags, its data type and a sample of its values:

1. **A scale tag** (a band scale other than 1, GDAL's value when none is set) is honoured:
   ``value * scale + offset`` is reflectance. The result must look like reflectance (see 4),
   otherwise the tag does not fit the values and the raster is refused.
2. **No scale tag, integer type**, values far above 1 (99th percentile at least 100): DN x 10000,
   Sentinel-2's quantification value (``BOA_QUANTIFICATION_VALUE`` / ``QUANTIFICATION_VALUE``), the
   unit of every L1C/L2A band file and of most exports (sen2r, QGIS, GDAL). An offset tag without a scale is then in DN
   (``-1000`` for processing baseline 04.00 and later). Integers within 0..2 are refused (an
   integer cannot hold reflectance, and DN of 0..2 are not an image), and so are 99th percentiles
   between 2 and 100 (percent? reflectance below 0.01 is no scene).
3. **No scale tag, floating-point type**: values within about -0.5..2 are reflectance (SNAP,
   QGIS or xarray exports). Values in the hundreds to thousands are read as DN x 10000, as in 2:
   it is what ``gdal_translate -ot Float32`` or ``gdalwarp`` of a band file, or a Google Earth
   Engine export, holds, and a Sentinel-2 user reads 0..10000 as DN; a line in the log says so.
   Values in between (99th percentile 2..100, e.g. percent) or beyond the range of a uint16 DN
   fit neither unit: refused, with the values found and how to tag the scale.
4. "Looks like reflectance": the 1st and 99th percentiles of the sampled values (no-data, NaN,
   infinities and zeros left out) within -0.5..2. Percentiles, so that a few saturated pixels
   (DN 65535, reflectance 6.5) change nothing.

An 8-bit raster without a scale tag (a true-colour image) is refused. NaN and infinities are never
data, whatever the declared NoData.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ServiceError

QUANTIFICATION = 10000.0  # Sentinel-2 DN per unit of reflectance
# the units a model file or patch index records for the values it takes: per unit, the factor
# from reflectance x 10000 (the unit the services' models are trained on) to it
DN_UNIT = "reflectance x 10000"
REFLECTANCE_UNIT = "reflectance"
UNIT_FACTORS = {DN_UNIT: 1.0, REFLECTANCE_UNIT: 1.0 / QUANTIFICATION}
REFLECTANCE_RANGE = (-0.5, 2.0)  # what reflectance looks like (1st and 99th percentiles)
DN_RANGE = (-0.5 * QUANTIFICATION, 65535.0)  # what DN x 10000 can be (same percentiles)
DN_MIN_HIGH = 100.0  # a raster of DN x 10000 has its 99th percentile at least this high
PERCENTILES = (1.0, 99.0)
SAMPLE_WINDOWS = 8  # windows per side of the sample grid
SAMPLE_SIZE = 32  # pixels per side of a sample window
ENOUGH = 1000  # values: below this, blocks are scanned until there are


@dataclass(frozen=True)
class ReflectanceUnits:
    """Per band: ``reflectance = value * scale + offset`` (float64 arrays); ``unit``: ``tags``,
    ``dn`` or ``reflectance``; ``note``: what was decided and why, for the log."""

    scale: np.ndarray
    offset: np.ndarray
    unit: str
    note: str

    def to_dn(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset) to reflectance x 10000 instead."""
        return self.scale * QUANTIFICATION, self.offset * QUANTIFICATION


def data_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Where ``values`` (any shape) hold data: finite and not the declared NoData."""
    ok = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(values.shape, bool)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        ok &= values != nodata
    return ok


def sample_values(ds, indexes: list[int], nodata: float | None) -> np.ndarray:
    """Data values of bands ``indexes`` of ``ds`` (a rasterio dataset or
    ``components.common.readers.RasterReader``), NoData, NaN and zeros left out: a grid of small
    windows spread over the raster, then whole blocks while too few values are found."""
    from rasterio.windows import Window

    h, w = ds.height, ds.width
    if h * w <= (SAMPLE_WINDOWS * SAMPLE_SIZE) ** 2:
        windows = [Window(0, 0, w, h)]
    else:
        def starts(n):
            size = min(SAMPLE_SIZE, n)
            return sorted({min(n - size, max(0, round((i + 0.5) * n / SAMPLE_WINDOWS - size / 2)))
                           for i in range(SAMPLE_WINDOWS)}), size
        rows, rh = starts(h)
        cols, cw = starts(w)
        windows = [Window(c, r, cw, rh) for r in rows for c in cols]
    parts, n = [], 0

    def take(win):
        nonlocal n
        v = ds.read(indexes, window=win)
        v = v[data_mask(v, nodata) & (v != 0)]
        parts.append(v)
        n += v.size

    for win in windows:
        take(win)
    if n < ENOUGH and len(windows) > 1:
        for _, win in ds.block_windows(1):
            take(win)
            if n >= ENOUGH:
                break
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def _tags(ds, indexes: list[int], bands: list[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    scales = np.array([ds.scales[i - 1] for i in indexes], np.float64)
    offsets = np.array([ds.offsets[i - 1] for i in indexes], np.float64)
    for what, values, ok in (("scale", scales, np.isfinite(scales) & (scales > 0)),
                             ("offset", offsets, np.isfinite(offsets))):
        if not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            raise ServiceError(f"{label}: band {bands[k]} has {what} {float(values[k])!r}: a finite number"
                               f"{' > 0' if what == 'scale' else ''} is needed")
    return scales, offsets


def _looks_like(lo: float, hi: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= lo and hi <= bounds[1]


def reflectance_units(ds, indexes: list[int], bands: list[str], label: str,
                      nodata: float | None = None) -> ReflectanceUnits:
    """How to bring bands ``indexes`` (named ``bands``) of ``ds`` to reflectance, by the rule of
    this module; a ServiceError naming ``label`` when the values fit no unit."""
    scales, offsets = _tags(ds, indexes, bands, label)
    dtype = np.dtype(ds.dtypes[indexes[0] - 1])
    values = sample_values(ds, indexes, nodata)
    tagged = not np.allclose(scales, 1.0)
    if values.size:
        lo, hi = (float(v) for v in np.percentile(values, PERCENTILES))
        seen = f"{lo:.6g}..{hi:.6g} (1st..99th percentile)"
    else:
        lo = hi = 0.0
        seen = "(none sampled)"
    how = ("set the bands' scale tag to the factor that makes them reflectance (gdal_edit.py -scale 0.0001 for "
           "DN x 10000, 0.01 for percent)")
    if tagged:
        if values.size:
            refl = np.percentile(values, PERCENTILES)[:, None] * scales[None] + offsets[None]
            lo_r, hi_r = float(refl.min()), float(refl.max())
            if not _looks_like(lo_r, hi_r, REFLECTANCE_RANGE):
                raise ServiceError(f"{label}: its scale tag {float(scales[0]):g} (offset {float(offsets[0]):g}) "
                                   f"makes its values {seen} reflectance "
                                   f"{lo_r:.4g}..{hi_r:.4g}, not within {REFLECTANCE_RANGE[0]:g}.."
                                   f"{REFLECTANCE_RANGE[1]:g}: the tag does not fit the values")
        return ReflectanceUnits(scales, offsets, "tags",
                                f"{label}: reflectance = value x {float(scales[0]):g} + {float(offsets[0]):g} "
                                "(band scale/offset tags)")
    integer = np.issubdtype(dtype, np.integer)
    if integer and dtype.itemsize == 1:
        raise ServiceError(f"{label}: 8-bit {dtype.name} values without a scale tag are not Sentinel-2 "
                           f"reflectance (a true-colour image?): give the reflectance bands (uint16 DN x 10000 "
                           f"or float reflectance), or {how}")
    shift = f" {'-' if offsets[0] < 0 else '+'} {abs(float(offsets[0])):g}" if offsets.any() else ""
    dn = ReflectanceUnits(np.full(len(indexes), 1.0 / QUANTIFICATION), offsets / QUANTIFICATION, "dn",
                          f"{label}: {dtype.name} values {seen} without a scale tag: read as "
                          f"DN x 10000 (Sentinel-2's quantification value), reflectance = "
                          f"{'(value' + shift + ')' if shift else 'value'} / 10000")
    if not values.size:  # nothing to look at: the run finds no data anyway
        return dn if integer else ReflectanceUnits(np.ones(len(indexes)), offsets, "reflectance",
                                                   f"{label}: no data sampled, taken as reflectance")
    if _looks_like(lo, hi, REFLECTANCE_RANGE):
        if integer:
            raise ServiceError(f"{label}: {dtype.name} values {seen} without a scale tag "
                               f"are neither reflectance (an integer cannot hold it) nor DN x 10000 (far above 1): "
                               f"{how}")
        return ReflectanceUnits(np.ones(len(indexes)), offsets, "reflectance",
                                f"{label}: {dtype.name} values {seen} without a scale tag: "
                                "read as reflectance")
    if _looks_like(lo, hi, DN_RANGE) and hi >= DN_MIN_HIGH:
        return dn
    raise ServiceError(f"{label}: {dtype.name} values {seen} without a scale tag are neither "
                       f"reflectance (about {REFLECTANCE_RANGE[0]:g}..{REFLECTANCE_RANGE[1]:g}) nor DN x 10000 "
                       f"(99th percentile {DN_MIN_HIGH:g}..{DN_RANGE[1]:g}): {how}")
