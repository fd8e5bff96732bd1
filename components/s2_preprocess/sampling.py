"""Reading a raster of the tile (a band, SCL, a mask) onto a strip of the output grid, with the
resampling the parameters ask for. Integer scale factors use the NumPy kernels in
``resampling``; other ratios, and interpolating upsampling, go through GDAL's warper."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.warp import reproject
from rasterio.windows import Window

from components.common.errors import ServiceError
from components.common.readers import open_raster
from components.common.sentinel2 import Grid

from . import resampling

GDAL_DOWNSAMPLING = {"First": Resampling.nearest, "Min": Resampling.min, "Max": Resampling.max,
                     "Mean": Resampling.average, "Median": Resampling.med}
GDAL_UPSAMPLING = {"Nearest": Resampling.nearest, "Bilinear": Resampling.bilinear,
                   "Bicubic": Resampling.cubic}


@dataclass(frozen=True)
class Strip:
    """Rows [row_off, row_off + height) of the output grid, full width."""

    grid: Grid
    row_off: int
    height: int

    @property
    def transform(self) -> Affine:
        g = self.grid
        return Affine(g.resolution, 0, g.ulx, 0, -g.resolution, g.uly - self.row_off * g.resolution)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.grid.cols


def _integral(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


class SourceRaster:
    """One band of a raster file on the tile grid at its own resolution. A damaged file (at its
    opening or in any later read) is a ServiceError naming ``label`` (default: the file's name
    and its product's)."""

    def __init__(self, path: str, grid: Grid, band: int = 1, nodata: int = 0, label: str | None = None):
        self.path, self.grid, self.band, self.nodata = path, grid, band, nodata
        self.ds = open_raster(path, label)
        if (self.ds.height, self.ds.width) != (grid.rows, grid.cols):
            # e.g. a decimated copy in a folder of another resolution: read on the declared grid,
            # its pixels would land in a corner of the tile and the rest would be NoData
            size = f"{self.ds.width} x {self.ds.height} px of {abs(self.ds.transform.a):g} m"
            self.ds.close()
            raise ServiceError(f"{self.ds.label}: {size}, but a {grid.resolution:g} m raster of this tile is "
                               f"{grid.cols} x {grid.rows} px: the file does not match the resolution it is "
                               "declared at")

    def close(self) -> None:
        self.ds.close()

    def _read_clipped(self, row0: int, col0: int, rows: int, cols: int) -> np.ndarray:
        """Read rows x cols at (row0, col0), NoData where the window leaves the raster."""
        h, w = self.ds.height, self.ds.width
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + rows, h), min(col0 + cols, w)
        out = np.full((rows, cols), self.nodata, dtype=self.ds.dtypes[self.band - 1])
        if r1 > r0 and c1 > c0:
            out[r0 - row0:r1 - row0, c0 - col0:c1 - col0] = self.ds.read(
                self.band, window=Window(c0, r0, c1 - c0, r1 - r0))
        return out

    def read(self, strip: Strip, *, flag: bool, downsampling: str = "First",
             flag_downsampling: str = "First", upsampling: str = "Nearest") -> np.ndarray:
        src, out = self.grid, strip.grid
        k = out.resolution / src.resolution
        x0 = (out.ulx - src.ulx) / src.resolution
        y0 = (src.uly - (out.uly - strip.row_off * out.resolution)) / src.resolution
        h, w = strip.shape
        if _integral(k) and _integral(x0) and _integral(y0) and k >= 1:
            f, r0, c0 = round(k), round(y0), round(x0)
            block = self._read_clipped(r0, c0, h * f, w * f)
            if flag:
                return resampling.downsample_flags(block, f, flag_downsampling)
            return resampling.downsample(block, f, downsampling, self.nodata)
        if flag or (k < 1 and upsampling == "Nearest") or (k > 1 and downsampling == "First"):
            return self._nearest(y0, x0, k, h, w)
        return self._warp(strip, GDAL_UPSAMPLING[upsampling] if k < 1 else GDAL_DOWNSAMPLING[downsampling])

    def _nearest(self, y0: float, x0: float, k: float, h: int, w: int) -> np.ndarray:
        rows = np.floor(y0 + (np.arange(h) + 0.5) * k).astype(np.int64)
        cols = np.floor(x0 + (np.arange(w) + 0.5) * k).astype(np.int64)
        r0, c0 = int(rows.min()), int(cols.min())
        block = self._read_clipped(r0, c0, int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1)
        return block[np.ix_(rows - r0, cols - c0)]

    def _warp(self, strip: Strip, method: Resampling) -> np.ndarray:
        src, out = self.grid, strip.grid
        left, top = out.ulx, out.uly - strip.row_off * out.resolution
        margin = 3
        c0 = math.floor((left - src.ulx) / src.resolution) - margin
        r0 = math.floor((src.uly - top) / src.resolution) - margin
        cols = math.ceil(out.cols * out.resolution / src.resolution) + 2 * margin + 1
        rows = math.ceil(strip.height * out.resolution / src.resolution) + 2 * margin + 1
        block = self._read_clipped(r0, c0, rows, cols)
        src_transform = Affine(src.resolution, 0, src.ulx + c0 * src.resolution,
                               0, -src.resolution, src.uly - r0 * src.resolution)
        dst = np.full(strip.shape, self.nodata, dtype=block.dtype)
        reproject(block, dst, src_transform=src_transform, src_crs=src.crs, src_nodata=self.nodata,
                  dst_transform=strip.transform, dst_crs=out.crs, dst_nodata=self.nodata,
                  resampling=method, num_threads=2)
        return dst
