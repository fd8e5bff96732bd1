"""Cloud masks on the output grid.

- ``L2A``: the scene classification (SCL) classes chosen by ``cloud_classes``;
- ``L1C``: the mask ESA ships with both levels: from baseline 04.00 the raster
  ``MSK_CLASSI_B00.jp2`` (60 m; band 1 opaque clouds, band 2 cirrus, band 3 snow), before it the
  vector ``MSK_CLOUDS_B00.gml`` (OPAQUE and CIRRUS polygons in the tile CRS).

Masks are computed at their own resolution, then brought to the output grid with the flag
downsampling method (or nearest neighbour when upsampling).
"""

from __future__ import annotations

import math

import numpy as np
from lxml import etree

from components.common.errors import ServiceError
from components.common.sentinel2 import S2Product

from .sampling import SourceRaster, Strip

CLASSI_CLOUD_BANDS = (1, 2)  # opaque clouds, cirrus
GML_CLOUD_TYPES = ("OPAQUE", "CIRRUS")


class CloudMask:
    """``cloudy(strip)`` gives a boolean array, True where a pixel is cloudy."""

    def __init__(self, product: S2Product, kind: str, classes: tuple[int, ...], target_resolution: float,
                 flag_downsampling: str):
        self.kind, self.classes, self.flag_downsampling = kind, np.array(classes, np.uint8), flag_downsampling
        self._sources: list[SourceRaster] = []
        self._polygons: list = []
        self.source_file = ""
        if kind == "L2A":
            if product.level != "L2A":
                raise ServiceError(f"cloudmask L2A needs the scene classification of a Level-2A product; "
                                   f"{product.name} is {product.level}: use cloudmask L1C")
            rel, res = product.band_source("SCL", target_resolution)
            scl = SourceRaster(product.gdal_path(rel), product.grids[res], label=product.label(rel))
            self._sources = [_ClassifiedSource(scl, lambda a: np.isin(a, self.classes))]
            self.source_file = rel
        elif kind == "L1C":
            if "MSK_CLASSI" in product.mask_files:
                rel = product.require_file(product.mask_files["MSK_CLASSI"], "cloud mask")
                path = product.gdal_path(rel)
                self._sources = [_ClassifiedSource(SourceRaster(path, product.grids[60], band=b,
                                                                label=product.label(rel)), lambda a: a > 0)
                                 for b in CLASSI_CLOUD_BANDS]
            elif "MSK_CLOUDS" in product.mask_files:
                rel = product.require_file(product.mask_files["MSK_CLOUDS"], "cloud mask")
                self._polygons = parse_cloud_gml(product.read_bytes(rel), product.label(rel))
            else:
                raise ServiceError(f"{product.name} lists no cloud mask (MSK_CLASSI or MSK_CLOUDS) in MTD_TL.xml")
            self.source_file = rel

    def cloudy(self, strip: Strip) -> np.ndarray:
        if not self._sources:
            return self._rasterise(strip)
        out = np.zeros(strip.shape, bool)
        for src in self._sources:
            out |= src.read(strip, flag=True, flag_downsampling=self.flag_downsampling).astype(bool)
        return out

    def _rasterise(self, strip: Strip) -> np.ndarray:
        from rasterio.features import rasterize

        if not self._polygons:
            return np.zeros(strip.shape, bool)
        return rasterize(((p, 1) for p in self._polygons), out_shape=strip.shape, transform=strip.transform,
                         fill=0, dtype="uint8").astype(bool)

    def close(self) -> None:
        for s in self._sources:
            s.close()


class _ClassifiedSource(SourceRaster):
    """A source whose samples are classified to a 0/1 mask before resampling."""

    def __init__(self, inner: SourceRaster, classify):
        self.path, self.grid, self.band, self.nodata, self.ds = inner.path, inner.grid, inner.band, 0, inner.ds
        self._classify = classify

    def _read_clipped(self, row0, col0, rows, cols):
        return self._classify(super()._read_clipped(row0, col0, rows, cols)).astype(np.uint8)


def parse_cloud_gml(data: bytes, file: str) -> list:
    """OPAQUE and CIRRUS polygons of an ESA MSK_CLOUDS_B00.gml (coordinates in the tile CRS);
    ``file`` names it in errors."""
    from shapely.geometry import Polygon

    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError as e:
        raise ServiceError(f"corrupt cloud mask {file}: {' '.join(str(e).split())}") from None
    polygons = []
    for feature in root.iter("{*}MaskFeature"):
        kind = feature.findtext("{*}maskType")
        if kind not in GML_CLOUD_TYPES:
            continue
        for poly in feature.iter("{*}Polygon"):
            rings = [_ring(pos, file) for pos in poly.iter("{*}posList")]
            if rings:
                polygons.append(Polygon(rings[0], rings[1:]))
    return polygons


def _ring(pos, file: str) -> list[tuple[float, ...]]:
    """The coordinates of a gml:posList, checked: finite numbers, whole points, a closable ring."""
    dim_text = pos.get("srsDimension", "2")
    if dim_text.strip() not in ("2", "3"):
        raise ServiceError(f"cloud mask {file}: posList srsDimension {dim_text!r} is not 2 or 3")
    dim = int(dim_text)
    text = " ".join((pos.text or "").split())
    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        v = [float(t) for t in text.split()]
    except ValueError:
        raise ServiceError(f"cloud mask {file}: posList {shown!r} is not a list of coordinates") from None
    if len(v) % dim or len(v) < 3 * dim or not all(map(math.isfinite, v)):
        raise ServiceError(f"cloud mask {file}: posList {shown!r} is not a ring of at least three "
                           f"{dim}-D points")
    return list(zip(v[0::dim], v[1::dim]))
