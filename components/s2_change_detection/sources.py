"""Raster plumbing between the files and the engine: the common grid of the pair, readers of the
pre-processed stacks and of the scene classification on that grid, and the GeoTIFF sink."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from components.common.aoi import AoI, aoi_mask
from components.common.errors import ServiceError
from components.common.output_grid import pixel_size
from components.common.readers import open_raster
from components.common.reflectance import ReflectanceUnits, data_mask, reflectance_units
from components.common.sentinel2 import NODATA_DN, Grid, S2Product
from components.s2_preprocess.sampling import SourceRaster, Strip

from . import cva
from .engine import NODATA_CLASS, Block

EPS = 1e-6  # in pixels
SAME_CLASS_EXCLUDED = (0, 1)  # SCL no data and saturated pixels are never stable references


def common_grid(first: Path, second: Path, resolution_m: float, aoi: AoI | None) -> Grid:
    """The grid of the comparison: the first stack's CRS and pixel alignment at the requested
    resolution, over the intersection of both stacks (and of the AoI's bounds)."""
    from rasterio.warp import transform_bounds

    with rasterio.open(first) as a, rasterio.open(second) as b:
        crs = a.crs
        res = pixel_size(resolution_m, crs)
        ulx, uly = a.transform.c, a.transform.f
        left, bottom, right, top = a.bounds
        b_bounds = b.bounds if b.crs == crs else transform_bounds(b.crs, crs, *b.bounds, densify_pts=21)
    left, bottom = max(left, b_bounds[0]), max(bottom, b_bounds[1])
    right, top = min(right, b_bounds[2]), min(top, b_bounds[3])
    if aoi is not None:
        a_left, a_bottom, a_right, a_top = aoi.bounds_in(crs)
        left, bottom, right, top = max(left, a_left), max(bottom, a_bottom), min(right, a_right), min(top, a_top)
    if right <= left or top <= bottom:
        raise ServiceError("the two inputs have no area in common" + (" inside the AoI" if aoi else ""))
    left = ulx + math.floor((left - ulx) / res + EPS) * res
    top = uly - math.floor((uly - top) / res + EPS) * res
    cols = max(1, math.ceil((right - left) / res - EPS))
    rows = max(1, math.ceil((top - bottom) / res - EPS))
    return Grid(crs.to_string(), left, top, res, rows, cols)


def stack_units(path: Path, bands: tuple[str, ...], label: str | None = None) -> ReflectanceUnits:
    """How the chosen bands of a stack become reflectance (``components.common.reflectance``: scale
    tags, else DN x 10000 for integers and values far above 1, reflectance for floats within about
    -0.5..2); a ServiceError naming ``label`` (default: the file name) when the values fit no unit."""
    from components.common.sentinel2 import normalise_band

    with open_raster(path) as ds:
        names = [normalise_band(d) if d else "" for d in ds.descriptions]
        indexes = [names.index(b) + 1 for b in bands]
        return reflectance_units(ds, indexes, list(bands), label or Path(path).name, _nodata(ds))


def _nodata(ds) -> float:
    return ds.nodata if ds.nodata is not None else NODATA_DN


class StackReader:
    """Reflectance of chosen bands of a pre-processed stack on the common grid. NaN and infinite
    values are no data, whatever the declared NoData."""

    def __init__(self, path: Path, bands: tuple[str, ...], grid: Grid, units: ReflectanceUnits | None = None):
        from components.common.sentinel2 import normalise_band

        self.ds = open_raster(path)
        names = [normalise_band(d) if d else "" for d in self.ds.descriptions]
        self.indexes = [names.index(b) + 1 for b in bands]
        self.nodata = _nodata(self.ds)
        if units is None:
            units = reflectance_units(self.ds, self.indexes, list(bands), Path(path).name, self.nodata)
        self.units = units
        self.scale = units.scale.astype(np.float32)[:, None, None]
        self.offset = units.offset.astype(np.float32)[:, None, None]
        self.grid = grid
        t = self.ds.transform
        col0 = (grid.ulx - t.c) / t.a
        row0 = (t.f - grid.uly) / -t.e
        same = (rasterio.crs.CRS.from_user_input(grid.crs) == self.ds.crs and t.b == 0 and t.d == 0
                and abs(t.a - grid.resolution) < EPS * grid.resolution
                and abs(-t.e - grid.resolution) < EPS * grid.resolution
                and abs(col0 - round(col0)) < 1e-4 and abs(row0 - round(row0)) < 1e-4)
        self.offset_rc = (round(row0), round(col0)) if same else None
        self.vrt = None
        if not same:
            coarser = grid.resolution > max(abs(t.a), abs(t.e)) * (1 + EPS)
            self.vrt = WarpedVRT(self.ds.dataset, crs=grid.crs, transform=grid_transform(grid), width=grid.cols,
                                 height=grid.rows, nodata=self.nodata,
                                 resampling=Resampling.average if coarser else Resampling.nearest)

    def read(self, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
        """(reflectance float32 (bands, rows, cols), data mask (rows, cols))."""
        if self.vrt is not None:
            with self.ds.guard():
                dn = self.vrt.read(self.indexes, window=Window(0, row0, self.grid.cols, row1 - row0))
        else:
            dn = self._read_clipped(self.offset_rc[0] + row0, self.offset_rc[1], row1 - row0, self.grid.cols)
        has_data = data_mask(dn, self.nodata).all(axis=0)
        x = dn.astype(np.float32) * self.scale + self.offset
        x[:, ~has_data] = 0.0  # no NaN reaches the filters and sums of the method
        return x, has_data

    def _read_clipped(self, row0: int, col0: int, rows: int, cols: int) -> np.ndarray:
        """Read rows x cols at (row0, col0) of the stack, NoData where the window leaves it."""
        out = np.full((len(self.indexes), rows, cols), self.nodata, dtype=self.ds.dtypes[0])
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + rows, self.ds.height), min(col0 + cols, self.ds.width)
        if r1 > r0 and c1 > c0:
            out[:, r0 - row0:r1 - row0, c0 - col0:c1 - col0] = self.ds.read(
                self.indexes, window=Window(c0, r0, c1 - c0, r1 - r0))
        return out

    def close(self) -> None:
        if self.vrt is not None:
            self.vrt.close()
        self.ds.close()


def grid_transform(grid: Grid):
    from rasterio.transform import Affine

    return Affine(grid.resolution, 0.0, grid.ulx, 0.0, -grid.resolution, grid.uly)


class SclReader:
    """The scene classification (SCL) of a Level-2A product on the common grid (nearest)."""

    def __init__(self, product: S2Product, grid: Grid):
        rel, res = product.band_source("SCL", grid.resolution)
        self.source = SourceRaster(product.gdal_path(rel), product.grids[res], label=product.label(rel))
        self.grid = grid

    def read(self, row0: int, row1: int) -> np.ndarray:
        return self.source.read(Strip(self.grid, row0, row1 - row0), flag=True)

    def close(self) -> None:
        self.source.close()


class RasterPairSource:
    """The engine's source over two stacks, an AoI and optionally both dates' SCL (the readers
    are closed by their owner)."""

    def __init__(self, grid: Grid, first: StackReader, second: StackReader, aoi: AoI | None,
                 scl: tuple[SclReader, SclReader] | None, cloud_classes: tuple[int, ...]):
        self.grid, self.first, self.second, self.aoi, self.scl = grid, first, second, aoi, scl
        self.cloud_classes = np.array(cloud_classes, np.uint8)
        self.shape = (grid.rows, grid.cols)
        self.bands = len(first.indexes)

    def read(self, row0: int, row1: int) -> Block:
        x1, d1 = self.first.read(row0, row1)
        x2, d2 = self.second.read(row0, row1)
        valid = d1 & d2
        if self.aoi is not None:
            t = grid_transform(self.grid)
            valid &= aoi_mask(self.aoi, self.grid.crs, t, self.shape, window=(row0, 0, row1 - row0, self.grid.cols))
        same = None
        if self.scl is not None:
            s1, s2 = self.scl[0].read(row0, row1), self.scl[1].read(row0, row1)
            valid &= ~np.isin(s1, self.cloud_classes) & ~np.isin(s2, self.cloud_classes)
            same = (s1 == s2) & ~np.isin(s1, SAME_CLASS_EXCLUDED)
        return Block(x1, x2, valid, same)


class TiffSink:
    """The engine's sink: the CVA (float32, 2 bands) and the class map (uint8) as tiled GeoTIFFs."""

    def __init__(self, grid: Grid, cva_path: Path, classes_path: Path):
        common = {"driver": "GTiff", "width": grid.cols, "height": grid.rows, "crs": grid.crs,
                  "transform": grid_transform(grid), "tiled": True, "blockxsize": 512, "blockysize": 512,
                  "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        self.cva_path, self.classes_path = cva_path, classes_path
        self.cva = rasterio.open(cva_path, "w+", count=2, dtype="float32", nodata=cva.NODATA, **common)
        self.classes = rasterio.open(classes_path, "w", count=1, dtype="uint8", nodata=NODATA_CLASS, **common)
        self.cols = grid.cols

    def write_cva(self, row0, magnitude, angle):
        self.cva.write(np.stack([magnitude, angle]), window=Window(0, row0, self.cols, len(magnitude)))

    def read_cva(self, row0, row1):
        data = self.cva.read(window=Window(0, row0, self.cols, row1 - row0))
        return data[0], data[1]

    def write_classes(self, row0, classes):
        self.classes.write(classes[None], window=Window(0, row0, self.cols, len(classes)))

    def close(self) -> None:
        self.cva.close()
        self.classes.close()
