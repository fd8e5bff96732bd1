"""Regular latitude-longitude grids and regridding between them.

The high-resolution grid has cell edges on multiples of ``hr_resolution`` (0.1°: the cell
centres of the CAMS European product, x.x5°), the low-resolution grid groups ``factor`` x
``factor`` high-resolution cells, and both cover the AoI box (snapped outwards). All regridding
is separable: ``out = A @ values @ B.T`` with one matrix per axis, built from 1-D coordinates:

- ``conservative``: area-weighted mean of the overlapping source cells (weights ∝ overlap in
  sin(latitude) and in longitude); exact for aligned grids and mean-preserving;
- ``bilinear``: linear interpolation between source cell centres along each axis;
- ``lanczos``: Lanczos-windowed sinc (a = 3), used by the evaluation baseline.

Missing values (NaN) are left out and the weights renormalised; a target cell that is less than
half covered by valid source data is NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from components.common.errors import ServiceError

EPS = 1e-6


@dataclass(frozen=True)
class Grid:
    """Cells ``res`` degrees wide from (south, west); centres ascend in both axes."""

    south: float
    west: float
    res: float
    rows: int
    cols: int

    @property
    def lat(self) -> np.ndarray:
        return self.south + (np.arange(self.rows) + 0.5) * self.res

    @property
    def lon(self) -> np.ndarray:
        return self.west + (np.arange(self.cols) + 0.5) * self.res

    @property
    def lat_edges(self) -> np.ndarray:
        return self.south + np.arange(self.rows + 1) * self.res

    @property
    def lon_edges(self) -> np.ndarray:
        return self.west + np.arange(self.cols + 1) * self.res

    @property
    def north(self) -> float:
        return self.south + self.rows * self.res

    @property
    def east(self) -> float:
        return self.west + self.cols * self.res

    def refine(self, factor: int) -> "Grid":
        return Grid(self.south, self.west, self.res / factor, self.rows * factor, self.cols * factor)

    def as_dict(self) -> dict:
        return {"south": self.south, "west": self.west, "res": self.res, "rows": self.rows, "cols": self.cols}

    def describe(self) -> str:
        return (f"{self.rows}x{self.cols} cells of {self.res:g}° (lat {self.south:g}..{self.north:g}, "
                f"lon {self.west:g}..{self.east:g})")

    def index_of(self, lat: float, lon: float) -> tuple[int, int]:
        """Row and column of the cell holding (lat, lon)."""
        r = min(max(int(math.floor((lat - self.south) / self.res)), 0), self.rows - 1)
        c = min(max(int(math.floor((lon - self.west) / self.res)), 0), self.cols - 1)
        return r, c


def aoi_grids(lat_min: float, lat_max: float, lon_min: float, lon_max: float, hr_res: float,
              factor: int) -> tuple[Grid, Grid]:
    """(low-resolution grid, high-resolution grid) covering the box, edges on multiples of hr_res."""
    lr_res = hr_res * factor
    south = round(math.floor(lat_min / hr_res + EPS) * hr_res, 10)
    west = round(math.floor(lon_min / hr_res + EPS) * hr_res, 10)
    rows = max(1, math.ceil((lat_max - south) / lr_res - EPS))
    cols = max(1, math.ceil((lon_max - west) / lr_res - EPS))
    lr = Grid(south, west, round(lr_res, 12), rows, cols)
    return lr, lr.refine(factor)


def edges_from_centres(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])  # a single cell: assume 1° (only for coverage checks)
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (c[1] - c[0]) / 2], mid, [c[-1] + (c[-1] - c[-2]) / 2]])


def _overlap_matrix(src_edges: np.ndarray, dst_edges: np.ndarray, measure=None) -> np.ndarray:
    """W[i, j] = measure of (dst cell i ∩ src cell j) / measure of dst cell i."""
    f = measure or (lambda x: x)
    lo = np.maximum(dst_edges[:-1, None], src_edges[None, :-1])
    hi = np.minimum(dst_edges[1:, None], src_edges[None, 1:])
    w = np.where(hi > lo, f(hi) - f(np.minimum(lo, hi)), 0.0)
    total = f(dst_edges[1:]) - f(dst_edges[:-1])
    return w / total[:, None]


def _linear_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    n = src.size
    w = np.zeros((dst.size, n))
    if n == 1:
        w[:, 0] = 1.0
        return w
    pos = np.interp(dst, src, np.arange(n))
    i0 = np.clip(np.floor(pos).astype(int), 0, n - 2)
    frac = pos - i0
    rows = np.arange(dst.size)
    w[rows, i0] = 1 - frac
    w[rows, i0 + 1] += frac
    return w


def _lanczos_matrix(src: np.ndarray, dst: np.ndarray, a: int = 3) -> np.ndarray:
    step = float(np.median(np.diff(src))) if src.size > 1 else 1.0
    x = (dst[:, None] - src[None, :]) / step
    w = np.where(np.abs(x) < a, np.sinc(x) * np.sinc(x / a), 0.0)
    return w / w.sum(axis=1, keepdims=True)


def axis_matrix(src_centres: np.ndarray, dst_centres: np.ndarray, dst_edges: np.ndarray, method: str,
                latitude: bool = False) -> np.ndarray:
    if method == "conservative":
        measure = (lambda v: np.sin(np.deg2rad(v))) if latitude else None
        return _overlap_matrix(edges_from_centres(src_centres), dst_edges, measure)
    if method == "bilinear":
        return _linear_matrix(src_centres, dst_centres)
    if method == "lanczos":
        return _lanczos_matrix(src_centres, dst_centres)
    raise ValueError(method)


def choose_method(requested: str, src_step: float, dst_step: float) -> str:
    """``auto``: conservative when the source is as fine as the target or finer, else bilinear."""
    if requested != "auto":
        return requested
    return "conservative" if src_step <= dst_step * (1 + 1e-6) else "bilinear"


class Regridder:
    """From a source grid (ascending 1-D lat and lon centres) onto ``dst``.

    ``rows`` and ``cols`` are the slices of the source actually needed, so that callers read only
    that window. ``label`` names the source in coverage errors.
    """

    def __init__(self, src_lat: np.ndarray, src_lon: np.ndarray, dst: Grid, method: str = "auto",
                 label: str = "source"):
        src_lat = np.asarray(src_lat, np.float64)
        src_lon = np.asarray(src_lon, np.float64)
        lat_step = float(np.median(np.abs(np.diff(src_lat)))) if src_lat.size > 1 else 1.0
        lon_step = float(np.median(np.abs(np.diff(src_lon)))) if src_lon.size > 1 else 1.0
        self.method = choose_method(method, max(lat_step, lon_step), dst.res)
        _check_coverage(src_lat, src_lon, dst, label, self.method)
        wy = axis_matrix(src_lat, dst.lat, dst.lat_edges, self.method, latitude=True)
        wx = axis_matrix(src_lon, dst.lon, dst.lon_edges, self.method)
        used_r = np.nonzero(wy.any(axis=0))[0]
        used_c = np.nonzero(wx.any(axis=0))[0]
        self.rows = slice(int(used_r[0]), int(used_r[-1]) + 1)
        self.cols = slice(int(used_c[0]), int(used_c[-1]) + 1)
        self.wy = wy[:, self.rows]
        self.wx = wx[:, self.cols]
        self.dst = dst

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """``window`` (..., rows, cols) of the source (already sliced) -> (..., dst.rows, dst.cols)."""
        v = np.asarray(window, np.float64)
        valid = np.isfinite(v)
        if valid.all():
            return np.einsum("ij,...jk,lk->...il", self.wy, v, self.wx, optimize=True)
        filled = np.where(valid, v, 0.0)
        num = np.einsum("ij,...jk,lk->...il", self.wy, filled, self.wx, optimize=True)
        den = np.einsum("ij,...jk,lk->...il", self.wy, valid.astype(np.float64), self.wx, optimize=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[den < 0.5] = np.nan
        return out


def _check_coverage(src_lat, src_lon, dst: Grid, label: str, method: str) -> None:
    lat_e = edges_from_centres(src_lat)
    lon_e = edges_from_centres(src_lon)
    if method == "conservative":
        need = (dst.south, dst.north, dst.west, dst.east)
    else:  # centres within the source cells' extent (half a cell beyond the outer centres)
        need = (dst.lat[0], dst.lat[-1], dst.lon[0], dst.lon[-1])
    tol = 1e-6
    if need[0] < lat_e[0] - tol or need[1] > lat_e[-1] + tol or need[2] < lon_e[0] - tol or \
            need[3] > lon_e[-1] + tol:
        raise ServiceError(
            f"{label} does not cover the AoI grid: it spans lat {lat_e[0]:g}..{lat_e[-1]:g}, lon "
            f"{lon_e[0]:g}..{lon_e[-1]:g}; the grid needs lat {need[0]:g}..{need[1]:g}, lon "
            f"{need[2]:g}..{need[3]:g}")


def interpolate(values: np.ndarray, src: Grid, dst: Grid, method: str) -> np.ndarray:
    """Interpolate fields on grid ``src`` to grid ``dst`` (edges clamp: constant beyond the outer
    centres). Used for the bilinear and Lanczos baselines."""
    wy = axis_matrix(src.lat, dst.lat, dst.lat_edges, method, latitude=True)
    wx = axis_matrix(src.lon, dst.lon, dst.lon_edges, method)
    return np.einsum("ij,...jk,lk->...il", wy, np.asarray(values, np.float64), wx, optimize=True)
