"""Radiometric terrain flattening: gamma0 RTC (Small 2011, "Flattening Gamma: Radiometric Terrain
Correction for SAR Imagery", IEEE TGRS 49(8)), as SNAP's Terrain-Flattening and sarsen's
``correct_radiometry="gamma_bilinear"`` compute it. Pure NumPy.

gamma0_T = beta0 / A, where A is the terrain's illuminated area in radar geometry, normalised by
the radar cell's own area:

1. every DEM facet (a pixel of the facet grid: the output grid, coarsened towards the DEM's own
   spacing) has a vector area (two triangles between the midpoints of its neighbours' centres, in
   ECEF); its *gamma area* is that area projected on the plane perpendicular to the look
   direction, ``max(0, area . look / |look|)`` (facets facing away from the radar give none);
2. the gamma areas are summed on a coarse radar grid (``GROUPING`` lines x ``GROUPING`` range
   pixels, in zero-Doppler time and slant range), each facet in the cell holding its radar
   position (Small's simulated image). This is what sarsen's "gamma_bilinear" amounts to: its
   four bilinearly weighted sums, each read back at the facet's own corner cell, add up to the
   plain sum over the facets of the facet's cell;
3. ``A`` at an output pixel is the sum of the cell holding the pixel's radar position, divided by
   the cell area (azimuth spacing x range spacing): on flat ground ``A = cot(incidence)`` and
   gamma0_T = beta0 tan(incidence), the ellipsoid gamma0.

Facets are accumulated on the output area plus a margin (``MARGIN_M``), so that the cells of
pixels at the output's edge receive every facet that falls in them.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from pyproj import Transformer

from components.common.output_grid import pixel_size

from . import geocoding

GROUPING = 3  # radar cell = 3 lines x 3 range pixels (sarsen's default grouping_area_factor)
MARGIN_M = 500.0  # facets beyond the output's edge that still fall in its edge cells
TILE = 1024
FACET_OVERSAMPLING = 1  # facets per DEM pixel side (SNAP's oversamplingMultiple default; sarsen's DEM grid)


class FlatteningArea:
    """The simulated illuminated area of a GRD image on its coarse radar grid, and its reading
    at output pixels."""

    def __init__(self, grid: geocoding.Grid, model: geocoding.RangeDopplerModel, image, dem: str,
                 geoid_height: float, fill: float | None, heights: tuple[float, float],
                 row_bounds: tuple[int, int]):
        self.model = model
        self.orbit = model.orbit
        self.grid = grid
        self.r0 = image.slant_range_time * geocoding.SPEED_OF_LIGHT / 2
        self.az_cell = GROUPING  # image lines per cell
        self.rg_cell = GROUPING * image.range_pixel_spacing  # metres of slant range per cell (as sarsen)
        self.cell_area = GROUPING * image.azimuth_pixel_spacing * self.rg_cell
        self.a0 = math.floor(row_bounds[0] / self.az_cell) - 2
        na = math.ceil(row_bounds[1] / self.az_cell) + 2 - self.a0
        ns = math.ceil((_far_slant_range(image) - self.r0) / self.rg_cell) + 3
        self.sum = np.zeros((na, ns), np.float64)
        self._accumulate(grid, dem, geoid_height, fill, heights, image)
        self.area = self.sum
        self.area /= self.cell_area  # in place: the grid of a full scene is ~200 MB

    # -- step 1 and 2: the facets' gamma areas summed on the radar grid ------------------------

    def _accumulate(self, grid, dem, geoid_height, fill, heights, image):
        k = facet_factor(grid, dem)
        pad = math.ceil(MARGIN_M / (_pixel_metres(grid.crs, grid.transform.a) * k))
        t = grid.transform
        transform = Affine(t.a * k, t.b, t.c - pad * k * t.a, t.d, t.e * k, t.f - pad * k * t.e)
        facets = geocoding.Grid(grid.crs, transform, math.ceil(grid.rows / k) + 2 * pad,
                                math.ceil(grid.cols / k) + 2 * pad)
        inv = geocoding.InverseMap(facets, self.model, terrain=True, heights=heights)
        to_lonlat = Transformer.from_crs(facets.crs, "EPSG:4326", always_xy=True)
        for r0 in range(0, facets.rows, TILE):
            for c0 in range(0, facets.cols, TILE):
                h, w = min(TILE, facets.rows - r0), min(TILE, facets.cols - c0)
                if not inv.may_cover(r0, c0, h, w, image.lines, image.samples, margin=GROUPING * 4):
                    continue
                # centres of the tile's facets and of a ring of neighbours: the corners need them
                z = geocoding.read_dem(dem, facets, r0 - 1, c0 - 1, h + 2, w + 2, geoid_height)
                if fill is not None:
                    z[~np.isfinite(z)] = fill
                zc = z[1:-1, 1:-1].copy()  # facets without a height of their own give no area
                if not np.isfinite(zc).any():
                    continue
                z = _nearest_filled(z)  # but facets at the DEM's edge get their corners
                p = _ecef(facets, to_lonlat, r0 - 1, c0 - 1, h + 2, w + 2, z)
                corners = 0.25 * (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:])  # (h+1, w+1, 3)
                vec = 0.5 * np.cross(corners[1:, 1:] - corners[:-1, :-1], corners[:-1, 1:] - corners[1:, :-1])
                centre = p[1:-1, 1:-1]
                vec *= np.sign(np.einsum("...k,...k", vec, centre))[..., None]  # outward, away from the Earth
                rows, _ = inv.window(r0, c0, h, w, dem=np.where(np.isfinite(zc), zc, heights[0]))
                look, rng = self._look(rows, centre)
                gamma = np.einsum("...k,...k", vec, look) / rng
                ok = np.isfinite(gamma) & np.isfinite(zc) & np.isfinite(rows) & (gamma > 0)
                self._splat(rows[ok] / self.az_cell - self.a0, (rng[ok] - self.r0) / self.rg_cell, gamma[ok])

    def _look(self, rows, ground):
        """Vectors from ground points to the satellite at their zero-Doppler times, and lengths."""
        t = self.model.t_row0 + rows * self.model.row_interval
        sat, _ = self.orbit.state(np.where(np.isfinite(t), t, self.model.t_row0))
        look = sat - ground
        return look, np.linalg.norm(look, axis=-1)

    def _splat(self, a, s, value):
        """Add each value to the radar cell holding (a, s)."""
        na, ns = self.sum.shape
        i = np.floor(a).astype(np.int64)
        j = np.floor(s).astype(np.int64)
        ok = (i >= 0) & (i < na) & (j >= 0) & (j < ns)
        flat = self.sum.reshape(-1)
        flat += np.bincount(i[ok] * ns + j[ok], weights=value[ok], minlength=flat.size)

    # -- step 3: the normalised area at output pixels -----------------------------------------

    def at(self, row_off: int, col_off: int, rows: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """Normalised area A at the output pixels of a window (image ``rows`` from the inverse
        map, ``heights`` ellipsoidal); NaN where no facet lit the cell."""
        h, w = rows.shape
        to_lonlat = Transformer.from_crs(self.grid.crs, "EPSG:4326", always_xy=True)
        p = _ecef(self.grid, to_lonlat, row_off, col_off, h, w, heights)
        _, rng = self._look(rows, p)
        i = np.floor(rows / self.az_cell - self.a0)
        j = np.floor((rng - self.r0) / self.rg_cell)
        na, ns = self.area.shape
        ok = np.isfinite(i) & np.isfinite(j) & (i >= 0) & (i < na) & (j >= 0) & (j < ns)
        area = np.full(rows.shape, np.nan)
        area[ok] = self.area[i[ok].astype(np.int64), j[ok].astype(np.int64)]
        return np.where(area > 0, area, np.nan)


def facet_factor(grid: geocoding.Grid, dem: str) -> float:
    """Output pixels per facet side: the DEM's spacing in output pixels (at least 1) divided by
    FACET_OVERSAMPLING."""
    import rasterio

    with rasterio.open(dem) as ds:
        dem_m = _pixel_metres(ds.crs, ds.transform.a)
    return max(1, int(dem_m / _pixel_metres(grid.crs, grid.transform.a) + 0.25)) / FACET_OVERSAMPLING


def _pixel_metres(crs, size: float) -> float:
    """A pixel's width in metres (the project's convention for degrees: METRES_PER_DEGREE)."""
    return abs(size) * pixel_size(1.0, crs) ** -1


def _nearest_filled(z: np.ndarray) -> np.ndarray:
    """``z`` with each NaN replaced by its nearest finite value."""
    missing = ~np.isfinite(z)
    if not missing.any():
        return z
    from scipy import ndimage

    idx = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
    return z[tuple(idx)]


def _ecef(grid, to_lonlat, row_off, col_off, h, w, z):
    cols, rows = np.meshgrid(np.arange(col_off, col_off + w) + 0.5, np.arange(row_off, row_off + h) + 0.5)
    t = grid.transform
    x = t.c + t.a * cols + t.b * rows
    y = t.f + t.d * cols + t.e * rows
    lon, lat = (x, y) if grid.crs.is_geographic and grid.crs.to_epsg() == 4326 else to_lonlat.transform(x, y)
    return geocoding.geodetic_to_ecef(np.asarray(lon), np.asarray(lat), np.asarray(z, np.float64))


def _far_slant_range(image) -> float:
    """The largest slant range of the image (its last sample, by the ground-to-slant polynomials)."""
    cc = image.coordinate_conversion
    g = image.samples * image.range_pixel_spacing
    return max(float(np.polynomial.polynomial.polyval(g - gr0, coef))
               for gr0, coef in zip(cc.gr0.values, cc.grsrCoefficients.values))
