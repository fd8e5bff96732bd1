"""Land/sea mask for an output grid, with a tolerance margin.

``LandSeaMask(crs, transform, shape, mode, tolerance_m, dem_path)`` decides which pixels of an
output grid become NoData:

* ``mode="Sea"`` removes sea pixels, ``mode="Land"`` removes land pixels.
* ``tolerance_m`` keeps a margin of the removed class next to the kept one: with ``Sea``, sea
  pixels within ``tolerance_m`` metres of land are kept (a coastal strip of water survives);
  with ``Land``, land pixels within ``tolerance_m`` metres of the sea are kept (a coastal strip of
  land survives). ``0`` keeps nothing of the removed class.
* Land comes from the global GLOBE-based mask embedded in the ``global-land-mask`` package
  (30 arc-second cells, about 1 km; most lakes count as land), or from a DEM file
  (``dem_path``): height above the geoid (sea level) <= 0 is sea, > 0 is land, the DEM's NoData
  is unknown and never removed. Areas below sea level on land (polders) are sea for a DEM.
  Heights are read in metres (:func:`dem_height_spec`: the band's unit or its vertical CRS's,
  scale and offset; an int16 DEM without NoData value has SRTM's voids, -32768). A DEM that
  declares heights above a geoid (a compound CRS such as EPSG:9707) or declares no vertical datum
  is used as it is; one that declares ellipsoidal heights (EPSG:4979) needs
  ``dem_geoid_height``, the geoid's height above the ellipsoid, subtracted to find the sea, and is
  refused without it.

The mask is evaluated once on a working grid that coarsens the output grid by an integer factor
(cells of about ``working_spacing_m``, 50 m by default, never finer than the output pixels), so a
full Sentinel-2 tile at 10 m costs a few MB. The tolerance is applied there with a Euclidean
distance transform in metres (distances between cell centres, so it is resolved to one working
cell). Callers ask for windows of the output grid with :meth:`LandSeaMask.remove` and process by
strips; each output pixel takes the value of the working cell that contains it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import Resampling, reproject, transform_bounds
from scipy import ndimage

from .errors import InvalidParameter, ServiceError
from .readers import reading

log = logging.getLogger(__name__)

MODES = ("Land", "Sea")
DEFAULT_WORKING_SPACING_M = 50.0
# Upper bound on the cells of the padded working grid (the distance transform needs about
# 30 bytes a cell at its peak); the working cell grows when a large tolerance would exceed it.
MAX_WORKING_CELLS = 8_000_000

_EARTH_RADIUS_M = 6_371_008.8
_SEA, _LAND, _UNKNOWN = 0, 1, 255


class LandSeaMask:
    """Which pixels of an output grid a land/sea mask sets to NoData.

    ``crs``, ``transform`` (affine, rasterio convention) and ``shape`` (rows, cols) describe the
    output grid. ``remove(row_off, col_off, height, width)`` returns True where a pixel of that
    window is removed. ``dem_geoid_height``: the geoid's height above the ellipsoid (metres), for
    a DEM of ellipsoidal heights; None or 0: not known.
    """

    def __init__(self, crs, transform, shape, mode: str, tolerance_m: float = 0.0,
                 dem_path: str | None = None,
                 working_spacing_m: float = DEFAULT_WORKING_SPACING_M,
                 dem_geoid_height: float | None = None):
        self.mode = _canonical_mode(mode)
        try:
            tol = float(tolerance_m)
        except (TypeError, ValueError):
            raise InvalidParameter("landseamask_tolerance", tolerance_m, "a number >= 0") from None
        if not math.isfinite(tol) or tol < 0:
            raise InvalidParameter("landseamask_tolerance", tolerance_m, "a number >= 0")
        self.tolerance_m = tol
        self.dem_path = None if dem_path in (None, "") else str(dem_path)
        self.crs = CRS.from_user_input(crs)
        self.transform = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
        height, width = (int(v) for v in shape)
        if height <= 0 or width <= 0:
            raise ValueError(f"empty output grid shape {shape!r}")
        self.shape = (height, width)

        px_m, py_m = _pixel_size_m(self.crs, self.transform, self.shape)
        factor = max(1, int(float(working_spacing_m) / max(px_m, py_m) + 0.5))
        while True:
            cell_x, cell_y = px_m * factor, py_m * factor
            pad = int(math.ceil(tol / min(cell_x, cell_y))) + 1 if tol > 0 else 0
            wh, ww = -(-height // factor), -(-width // factor)
            if (wh + 2 * pad) * (ww + 2 * pad) <= MAX_WORKING_CELLS or factor >= max(height, width):
                break
            factor += 1
        self.factor = factor
        self.working_shape = (wh, ww)
        self.working_transform = _subgrid(self.transform, factor, 0, 0)
        self.working_cell_m = (cell_y, cell_x)
        padded_shape = (wh + 2 * pad, ww + 2 * pad)
        padded_transform = _subgrid(self.working_transform, 1, -pad, -pad)

        if self.dem_path is None:
            classes = _globe_classes(self.crs, padded_transform, padded_shape)
        else:
            classes = _dem_classes(self.dem_path, self.crs, padded_transform, padded_shape,
                                   (slice(pad, pad + wh), slice(pad, pad + ww)), dem_geoid_height)
        removable, other = (_SEA, _LAND) if self.mode == "Sea" else (_LAND, _SEA)
        removed = classes == removable
        if tol > 0:
            _keep_margin(removed, classes == other, tol, (cell_y, cell_x), pad)
        self._removed = np.ascontiguousarray(removed[pad:pad + wh, pad:pad + ww])

    def remove(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Boolean array (height, width): True where the output pixel is removed (NoData)."""
        rows, cols = self.shape
        if (row_off < 0 or col_off < 0 or height < 0 or width < 0
                or row_off + height > rows or col_off + width > cols):
            raise ValueError(f"window ({row_off}, {col_off}, {height}, {width}) outside the "
                             f"output grid of shape {self.shape}")
        f = self.factor
        br, bc = row_off // f, col_off // f
        block = self._removed[br:-(-(row_off + height) // f), bc:-(-(col_off + width) // f)]
        if f > 1:
            block = block.repeat(f, axis=0).repeat(f, axis=1)
        ro, co = row_off - br * f, col_off - bc * f
        return np.array(block[ro:ro + height, co:co + width], dtype=bool, copy=True)

    @property
    def removed_fraction(self) -> float:
        """Fraction of the output grid's pixels that the mask removes."""
        f = self.factor
        wr = np.full(self.working_shape[0], f, np.float64)
        wr[-1] = self.shape[0] - f * (self.working_shape[0] - 1)
        wc = np.full(self.working_shape[1], f, np.float64)
        wc[-1] = self.shape[1] - f * (self.working_shape[1] - 1)
        return float(wr @ self._removed @ wc) / (self.shape[0] * self.shape[1])


def _keep_margin(removed: np.ndarray, target: np.ndarray, tol: float, sampling, pad: int) -> None:
    """Clear, in place, the cells of ``removed`` within ``tol`` metres of a ``target`` cell.

    Only the bounding box of the removed cells grown by ``pad`` cells (at least ``tol``) can hold
    a target close enough, so the distance transform runs on that part alone.
    """
    rows = np.flatnonzero(removed.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(removed.any(axis=0))
    r0, r1 = max(0, rows[0] - pad), min(removed.shape[0], rows[-1] + pad + 1)
    c0, c1 = max(0, cols[0] - pad), min(removed.shape[1], cols[-1] + pad + 1)
    sub_target = target[r0:r1, c0:c1]
    if not sub_target.any():
        return
    distance = ndimage.distance_transform_edt(~sub_target, sampling=sampling)
    removed[r0:r1, c0:c1] &= distance > tol


def _canonical_mode(mode) -> str:
    for m in MODES:
        if str(mode).strip().lower() == m.lower():
            return m
    raise InvalidParameter("landseamask", mode, "one of " + ", ".join(MODES))


def _pixel_size_m(crs: CRS, transform: Affine, shape) -> tuple[float, float]:
    """Pixel width and height in metres (at the grid's centre for a geographic CRS)."""
    px = math.hypot(transform.a, transform.d)
    py = math.hypot(transform.b, transform.e)
    if px == 0 or py == 0:
        raise ValueError(f"degenerate grid transform {transform!r}")
    if crs.is_geographic:
        _, lat = _apply(transform, shape[1] / 2, shape[0] / 2)
        metres_per_degree = math.pi / 180 * _EARTH_RADIUS_M
        return (px * metres_per_degree * max(math.cos(math.radians(lat)), 1e-6),
                py * metres_per_degree)
    if not crs.is_projected:
        raise ValueError(f"output grid CRS must be projected or geographic, got {crs.name}")
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return px * unit, py * unit


def _grid_bounds(transform: Affine, shape) -> tuple[float, float, float, float]:
    h, w = shape
    xs, ys = zip(*(_apply(transform, c, r) for c, r in ((0, 0), (w, 0), (0, h), (w, h))))
    return min(xs), min(ys), max(xs), max(ys)


def _subgrid(t: Affine, factor: int, col_off: float, row_off: float) -> Affine:
    """Transform of a grid of ``factor`` x ``factor`` pixels starting at (col_off, row_off)."""
    x0, y0 = _apply(t, col_off, row_off)
    return Affine(t.a * factor, t.b * factor, x0, t.d * factor, t.e * factor, y0)


def _apply(t: Affine, col: float, row: float) -> tuple[float, float]:
    return t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f


# --- the embedded global mask -----------------------------------------------------------------

def _globe_file() -> str:
    import importlib.util

    spec = importlib.util.find_spec("global_land_mask")
    if spec is None or spec.origin is None:
        raise ServiceError("the land/sea mask needs the package global-land-mask (or a DEM file)")
    return os.path.join(os.path.dirname(spec.origin), "globe_combined_mask_compressed.npz")


@functools.lru_cache(maxsize=1)
def _globe_axes() -> tuple[float, float, float, float, int, int]:
    """(lat0, dlat, lon0, dlon, nrows, ncols) of the global mask, as globe.is_land indexes it."""
    with np.load(_globe_file()) as data:
        lat, lon = data["lat"], data["lon"]
        return (float(lat[0]), float(lat[1] - lat[0]), float(lon[0]), float(lon[1] - lon[0]),
                len(lat), len(lon))


_ROW_BLOCK = 120  # rows of the global mask (one degree of latitude) per cached block
_MAX_CACHED_BLOCKS = 6  # 5.2 MB each
_blocks: OrderedDict[int, np.ndarray] = OrderedDict()
_blocks_lock = threading.Lock()


def _globe_rows(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Rows r0:r1, columns c0:c1 of the global ocean mask (True = ocean).

    The package keeps the mask as one deflated 21600 x 43200 boolean array (933 MB once loaded);
    it is decompressed as a stream up to the last row needed and only one-degree blocks of rows
    are kept (the few most recently used), so memory stays small.
    """
    k0, k1 = r0 // _ROW_BLOCK, -(-r1 // _ROW_BLOCK)
    with _blocks_lock:
        missing = [k for k in range(k0, k1) if k not in _blocks]
        if missing:
            _read_blocks(missing[0], missing[-1] + 1)
        parts = []
        for k in range(k0, k1):
            _blocks.move_to_end(k)
            parts.append(_blocks[k][:, c0:c1])
        while len(_blocks) > max(_MAX_CACHED_BLOCKS, k1 - k0):
            _blocks.popitem(last=False)
    rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return rows[r0 - k0 * _ROW_BLOCK:r1 - k0 * _ROW_BLOCK]


def _read_blocks(k0: int, k1: int) -> None:
    path = _globe_file()
    with zipfile.ZipFile(path) as zf, zf.open("mask.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if fortran or dtype != np.bool_ or len(shape) != 2:
            raise RuntimeError(f"unexpected layout of the global land mask in {path}")
        ncols = shape[1]
        _skip(fh, k0 * _ROW_BLOCK * ncols)
        for k in range(k0, k1):
            nrows = max(0, min(_ROW_BLOCK, shape[0] - k * _ROW_BLOCK))
            raw = fh.read(nrows * ncols)
            if len(raw) != nrows * ncols:
                raise RuntimeError(f"truncated global land mask in {path}")
            if k not in _blocks:
                _blocks[k] = np.frombuffer(raw, dtype=bool).reshape(nrows, ncols)


def _skip(fh, nbytes: int, chunk: int = 16 << 20) -> None:
    while nbytes > 0:
        got = len(fh.read(min(chunk, nbytes)))
        if got == 0:
            raise RuntimeError("truncated global land mask")
        nbytes -= got


def _globe_classes(crs: CRS, transform: Affine, shape) -> np.ndarray:
    """Sea/land class of each cell of a grid from the embedded global mask (nearest cell)."""
    lat0, dlat, lon0, dlon, nrows, ncols = _globe_axes()
    try:
        west, south, east, north = transform_bounds(crs, "EPSG:4326", *_grid_bounds(transform, shape),
                                                    densify_pts=21)
    except (RasterioError, CRSError) as exc:
        raise ServiceError(f"the output grid cannot be placed on the globe for the land/sea "
                           f"mask: {exc}") from None
    if not all(map(math.isfinite, (west, south, east, north))):
        raise ServiceError("the output grid cannot be placed on the globe for the land/sea mask")
    south, north = max(south, -90.0), min(north, 90.0)
    rows = sorted(((north - lat0) / dlat, (south - lat0) / dlat))
    r0 = max(0, int(math.floor(rows[0])) - 1)
    r1 = min(nrows, int(math.ceil(rows[1])) + 2)
    if west > east or (east - west) > 180:
        c0, c1 = 0, ncols  # across the antimeridian: whole rows
    else:
        cols = sorted(((west - lon0) / dlon, (east - lon0) / dlon))
        c0 = max(0, int(math.floor(cols[0])) - 1)
        c1 = min(ncols, int(math.ceil(cols[1])) + 2)
    ocean = _globe_rows(r0, r1, c0, c1)
    src = np.where(ocean, np.uint8(_SEA), np.uint8(_LAND))
    src_transform = Affine(dlon, 0.0, lon0 + c0 * dlon, 0.0, dlat, lat0 + r0 * dlat)
    classes = np.full(shape, _UNKNOWN, dtype=np.uint8)
    reproject(src, classes, src_transform=src_transform, src_crs="EPSG:4326",
              src_nodata=_UNKNOWN, dst_transform=transform, dst_crs=crs, dst_nodata=_UNKNOWN,
              resampling=Resampling.nearest)
    return classes


# --- a DEM file ------------------------------------------------------------------------------

def _dem_classes(path: str, crs: CRS, transform: Affine, shape, inner,
                 geoid_height: float | None = None) -> np.ndarray:
    """Sea (height above the geoid <= 0) / land / unknown (NoData) class of each cell from a DEM
    file (heights in metres, see :func:`dem_height_spec`)."""
    if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi"):
        raise ServiceError(f"DEM file does not exist: {path}")
    try:
        src = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise ServiceError(f"DEM file cannot be read as a raster: {path}: {_one_line(exc)}") from None
    with src:
        if src.crs is None:
            raise ServiceError(f"DEM file has no coordinate reference system: {path}")
        spec = dem_height_spec(src, os.path.basename(path))
        sea_level = dem_sea_level(spec, geoid_height)
        dem = np.full(shape, np.nan, dtype=np.float32)
        try:
            with reading(path, f"DEM file {path}"):  # damaged data: one line naming the file
                reproject(rasterio.band(src, 1), dem, src_nodata=spec.nodata, dst_transform=transform,
                          dst_crs=crs, dst_nodata=np.nan, resampling=Resampling.bilinear)
        except ServiceError:
            raise
        except Exception as exc:  # GDAL read/warp errors come as several exception types
            raise ServiceError(f"DEM file cannot be read: {path}: {_one_line(exc)}") from None
    dem = spec.to_metres(dem) - np.float32(sea_level)
    valid = np.isfinite(dem)
    covered = float(valid[inner].mean())
    if covered == 0:
        raise ServiceError(f"DEM file does not cover the output area: {path}")
    if covered < 1:
        log.warning("DEM %s covers %.1f%% of the output area; the rest is never masked",
                    path, 100 * covered)
    classes = np.full(shape, _UNKNOWN, dtype=np.uint8)
    classes[valid & (dem <= 0)] = _SEA
    classes[valid & (dem > 0)] = _LAND
    return classes


# --- DEM heights: units, scale and offset, voids, vertical datum --------------------------------

SRTM_VOID = -32768  # SRTM's void value: an int16 DEM without NoData value has its voids there
_FOOT = 0.3048
_US_SURVEY_FOOT = 1200.0 / 3937.0
# the height units understood (lower case, '_' and '-' as spaces), in metres
HEIGHT_UNITS = {
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters"), 1.0),
    **dict.fromkeys(("ft", "foot", "feet", "international foot", "international feet",
                     "foot (international)"), _FOOT),
    **dict.fromkeys(("us survey foot", "us survey feet", "ftus", "us ft", "us foot", "us feet",
                     "survey foot", "foot us", "foot (us survey)"), _US_SURVEY_FOOT),
}
KNOWN_UNITS = "m, metre(s), meter(s), ft, foot, feet, US survey foot"
GEOID, ELLIPSOID, UNDECLARED = "geoid", "ellipsoid", "undeclared"


@dataclass(frozen=True)
class DemHeightSpec:
    """How to turn a DEM's stored values into heights in metres, and what they are heights above.

    ``nodata``: the stored value of voids (the NoData value, or SRTM's -32768 for an int16 DEM
    without one); ``scale``, ``offset``: metres = stored * scale + offset (the band's scale and
    offset times its unit in metres); ``vertical``: GEOID (the CRS declares gravity-related
    heights, e.g. EGM96), ELLIPSOID (it declares ellipsoidal heights, e.g. EPSG:4979) or
    UNDECLARED; ``datum``: the vertical CRS's name."""

    label: str
    nodata: float | None
    scale: float
    offset: float
    vertical: str
    datum: str
    unit: str

    def to_metres(self, values: np.ndarray) -> np.ndarray:
        """Heights in metres (float32) of stored values already read or resampled (NaN kept)."""
        out = np.asarray(values, np.float32)
        if self.scale != 1.0 or self.offset != 0.0:
            out = out * np.float32(self.scale) + np.float32(self.offset)
        return out

    def masked(self, values: np.ndarray) -> np.ndarray:
        """Stored values read as they are: heights in metres, NaN at voids and non-finite values."""
        values = np.asarray(values)
        void = ~np.isfinite(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
        if self.nodata is not None:
            void |= values == self.nodata if not math.isnan(self.nodata) else np.isnan(values)
        out = self.to_metres(values.astype(np.float32))
        return np.where(void, np.float32(np.nan), out)


def _unit_factor(unit: str, label: str) -> float:
    key = " ".join(unit.strip().lower().replace("_", " ").replace("-", " ").split()).rstrip(".")
    if key not in HEIGHT_UNITS:
        raise ServiceError(f"DEM file {label}: height unit {unit!r} is not one known here "
                           f"({KNOWN_UNITS}): give a DEM of heights in one of them")
    return HEIGHT_UNITS[key]


def _vertical_of(crs, label: str) -> tuple[str, str, float | None]:
    """(GEOID / ELLIPSOID / UNDECLARED, the vertical CRS's name, its unit in metres) of a raster CRS."""
    if crs is None:
        return UNDECLARED, "", None
    try:
        c = CRS.from_wkt(crs.to_wkt(version="WKT2_2019")) if hasattr(crs, "to_wkt") else CRS.from_user_input(crs)
    except Exception:  # a CRS PROJ cannot express in WKT2: only its horizontal part can matter
        return UNDECLARED, "", None
    subs = c.sub_crs_list if c.is_compound else [c]
    for sub in subs:
        up = [a for a in sub.axis_info if a.direction.lower() in ("up", "down")]
        if not up:
            continue
        axis = up[0]
        if axis.direction.lower() == "down":
            raise ServiceError(f"DEM file {label}: its vertical CRS ({sub.name}) gives depths, not heights")
        if sub.is_vertical:
            return GEOID, sub.name, axis.unit_conversion_factor
        return ELLIPSOID, sub.name, axis.unit_conversion_factor  # geographic or projected 3D CRS
    return UNDECLARED, "", None


def dem_height_spec(dataset, label: str) -> DemHeightSpec:
    """The :class:`DemHeightSpec` of band 1 of an open rasterio dataset (its NoData value, scale,
    offset, unit, CRS); a ServiceError for a unit that is no length known here, a band unit that
    contradicts the vertical CRS's, or a scale that is 0 or not finite."""
    vertical, datum, crs_factor = _vertical_of(dataset.crs, label)
    band_unit = (dataset.units[0] if dataset.units else None) or ""
    band_factor = _unit_factor(band_unit, label) if band_unit.strip() else None
    if band_factor is not None and crs_factor is not None and not math.isclose(band_factor, crs_factor, rel_tol=1e-7):
        raise ServiceError(f"DEM file {label}: its band unit ({band_unit}) contradicts its vertical CRS "
                           f"({datum}, in units of {crs_factor:g} m)")
    factor = band_factor if band_factor is not None else crs_factor if crs_factor is not None else 1.0
    scale = float(dataset.scales[0]) if dataset.scales and dataset.scales[0] is not None else 1.0
    offset = float(dataset.offsets[0]) if dataset.offsets and dataset.offsets[0] is not None else 0.0
    if not math.isfinite(scale) or scale == 0 or not math.isfinite(offset):
        raise ServiceError(f"DEM file {label}: its scale ({scale:g}) and offset ({offset:g}) give no heights")
    nodata = dataset.nodata
    if nodata is None and dataset.dtypes[0] == "int16":
        nodata = float(SRTM_VOID)  # SRTM's convention: an untagged int16 DEM's voids
    unit = band_unit.strip() or ("metre" if crs_factor in (None, 1.0) else f"{crs_factor:g} m")
    return DemHeightSpec(label, None if nodata is None else float(nodata), scale * factor, offset * factor,
                         vertical, datum, unit)


def dem_sea_level(spec: DemHeightSpec, geoid_height: float | None) -> float:
    """The sea surface's height in the DEM's heights (metres): 0 above a geoid (or an undeclared
    datum, taken as sea level), the geoid height above the ellipsoid for ellipsoidal heights; a
    ServiceError for ellipsoidal heights when the geoid height is not known."""
    if spec.vertical != ELLIPSOID:
        return 0.0
    if not geoid_height:
        raise ServiceError(f"the land/sea mask from DEM file {spec.label} needs heights above sea level, and "
                           f"the DEM declares ellipsoidal heights ({spec.datum}) with no geoid height known: "
                           f"give a DEM of heights above the geoid (e.g. EGM96, EPSG:9707)")
    return float(geoid_height)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
