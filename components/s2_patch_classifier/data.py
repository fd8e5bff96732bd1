"""Sentinel-2 tiles and their labels, found in a folder.

A *tile* is either a multi-band raster (a GeoTIFF stack whose band descriptions name the bands,
as ``S2-preprocess`` writes them) or a set of single-band rasters whose file names carry the band
(``..._B02_...tif``, ``T29UNU_..._B8A_20m.jp2``): files in one folder that differ only by the
band token form one tile. Bands at a coarser resolution are resampled (bilinear) to the finest.
A Sentinel-2 SAFE product (folder or .zip) is one tile of its band files, read with the
quantification value and offset of its metadata. Values are read in one unit whatever the storage
(:mod:`.units`, :meth:`Tile.resolve_units`).

Its *labels* are, in this order of preference:

- a raster beside it named like the tile with ``_label``/``_labels``/``_mask``/``_gt``
  (``T1.tif`` -> ``T1_label.tif``; for per-band tiles the name without the band token), or
  reBEN's ``<patch>_reference_map.tif`` (CORINE codes, read as BigEarthNet's 19 classes), beside
  it or anywhere under the input (reBEN keeps them in a ``Reference_Maps`` tree);
- a COCO JSON named like the tile (``T1.json``, ``T1_coco.json``);
- the only label raster or COCO JSON of a folder holding a single tile (the sen2ships layout:
  ``<port>/<bands>.tiff`` + ``<port>/<port>_coco.json``).

Label values: 0 = background/unknown, 1..255 = classes (seed D5.2 section 3.2.1.5).

Reading is lenient with damaged files: a block that GDAL cannot decode becomes no data (NaN)
with a warning, up to :data:`MAX_BAD_FRACTION` of the tile; beyond that it is an error.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from components.common.errors import ServiceError
from components.common.reflectance import reflectance_units
from components.common.sentinel2 import BAND_NAMES, NODATA_DN, normalise_band

from . import coco

log = logging.getLogger(__name__)

RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt", ".img"}
LABEL_TOKENS = ("label", "labels", "mask", "gt", "annotation", "annotations", "reference_map")
SAFE_METADATA = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")  # a folder holding one is a Sentinel-2 product
# a band token, with the resolution suffix of ESA file names (B02_10m) taken along
_BAND_TOKEN = re.compile(r"(?<![A-Za-z0-9])(B(?:0?[1-9]|1[0-2]|8A))(?:_\d{2}m)?(?![A-Za-z0-9])", re.IGNORECASE)
_LABEL_RE = re.compile(r"[_\-. ](?:" + "|".join(LABEL_TOKENS) + r")$", re.IGNORECASE)
MAX_BAD_FRACTION = 0.25
BAND_ORDER = {b: i for i, b in enumerate(BAND_NAMES)}

# The simplified IGBP scheme of SEN12MS (Schmitt et al. 2019, and the DFC2020 classes): the 17
# IGBP classes of the MODIS land-cover layer merged into 10. Index = IGBP class, value = class.
#  1 forest (IGBP 1-5)      2 shrubland (6, 7)   3 savanna (8, 9)    4 grassland (10)
#  5 wetlands (11)          6 cropland (12, 14)  7 urban (13)        8 snow/ice (15)
#  9 barren (16)           10 water (17)
IGBP_SIMPLIFIED = np.array([0, 1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 6, 8, 9, 10], np.uint8)
SIMPLIFIED_NAMES = {1: "forest", 2: "shrubland", 3: "savanna", 4: "grassland", 5: "wetlands", 6: "cropland",
                    7: "urban", 8: "snow/ice", 9: "barren", 10: "water"}
IGNORE = 255  # label of pixels left out of the loss and the metrics (no data in the image)


class _GeoKeyNoise(logging.Filter):
    """Drops GDAL's warnings about GeoTIFF keys whose datum PROJ cannot look up (the sen2ships
    exports: EPSG:3857 with a user-defined datum; the EPSG code is used). They repeat at every
    read and bury the service's own log lines."""

    PATTERNS = ("internal_proj_create_from_database", "got from GeoTIFF keys is not the same")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p in message for p in self.PATTERNS)


logging.getLogger("rasterio._env").addFilter(_GeoKeyNoise())


def _gdal_env(func):
    """Run ``func`` with the GDAL options of this module: some exports (sen2ships) carry GeoTIFF
    keys that PROJ warns about at every read; their EPSG code is the CRS."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with rasterio.Env(GTIFF_SRS_SOURCE="EPSG"):
            return func(*args, **kwargs)
    return wrapper


@dataclass
class Tile:
    """One tile: its band sources and labels. ``bands`` are in the order they are read."""

    name: str
    folder: Path
    band_files: dict[str, Path] = field(default_factory=dict)  # per-band tile
    stack: Path | None = None                                  # multi-band tile
    stack_bands: tuple[str, ...] = ()
    label: Path | None = None
    coco: Path | None = None
    width: int = 0
    height: int = 0
    crs: object = None
    transform: object = None
    nodata: float | None = None
    keys: set = field(default_factory=set)  # names its label files may carry
    offsets: dict = field(default_factory=dict)  # band -> value added on reading (radiometry.correct)
    product: dict = field(default_factory=dict)  # SAFE band files: band -> (scale, offset) to reflectance
    product_note: str = ""                       # where those come from, for the log
    units: dict | None = None                    # band -> (scale, offset) to units.UNIT (resolve_units)
    unit_kind: str = ""                          # how its values were read: tags, dn, reflectance, product
    unit_note: str = ""                          # what was decided and why, for the log
    unit_factor: float = 1.0                     # values in units.UNIT times this (a model of another unit)
    label_scheme: str = ""                       # "clc": the label raster holds CORINE codes (reBEN)

    @property
    def bands(self) -> tuple[str, ...]:
        if self.stack is not None:
            return self.stack_bands
        return tuple(sorted(self.band_files, key=lambda b: BAND_ORDER.get(b, 99)))

    @property
    def has_labels(self) -> bool:
        return self.label is not None or self.coco is not None

    @property
    def sources(self) -> list[str]:
        files = [self.stack] if self.stack else list(self.band_files.values())
        return [str(f) for f in files + [self.label or self.coco] if f]

    def check_bands(self, wanted: tuple[str, ...]) -> None:
        missing = [b for b in wanted if b not in self.bands]
        if missing:
            raise ServiceError(f"unknown band {', '.join(missing)} for tile {self.name}: it has "
                               f"{', '.join(self.bands) or 'no named bands'}")

    def read(self, bands: tuple[str, ...], window: Window | None = None,
             shape: tuple[int, int] | None = None) -> np.ndarray:
        """(bands, rows, cols) float32 in the service's unit (:mod:`.units`: reflectance x 10000,
        times ``unit_factor``), each band then shifted by ``offsets``; no data and unreadable blocks
        are NaN. ``shape`` (rows, cols): the window decimated to that size (nearest pixels; GDAL
        reads overviews or JPEG 2000 resolution levels where the file has them), for statistics."""
        out = self.read_raw(bands, window, shape)
        self.resolve_units()
        for i, b in enumerate(bands):
            scale, offset = self.units.get(b, (1.0, 0.0))
            scale, offset = scale * self.unit_factor, offset * self.unit_factor
            if scale != 1.0:
                out[i] *= scale
            if offset + self.offsets.get(b, 0.0):
                out[i] += offset + self.offsets.get(b, 0.0)
        return out

    def resolve_units(self) -> None:
        """Decide once how this tile's values become reflectance x 10000 (:mod:`.units`), by the
        shared rule of :mod:`components.common.reflectance` over all its Sentinel-2 bands at once
        (a dark band alone, open water in B12, could pass for no unit); a ServiceError naming the
        tile when its values fit none."""
        if self.units is not None:
            return
        bands = [b for b in self.bands if b in BAND_NAMES]
        if not bands:
            self.units = {}
            return
        sample = _UnitSample(self, bands)
        found = reflectance_units(sample, list(range(1, len(bands) + 1)), bands, f"tile {self.name}")
        scale, offset = found.to_dn()
        self.units = {b: (float(s), float(o)) for b, s, o in zip(bands, scale, offset)}
        self.unit_kind, self.unit_note = found.unit, found.note
        if self.product:
            self.unit_kind, self.unit_note = "product", f"tile {self.name}: {self.product_note}"
        log.debug("%s", self.unit_note)

    @_gdal_env
    def read_raw(self, bands: tuple[str, ...], window: Window | None = None,
                 shape: tuple[int, int] | None = None) -> np.ndarray:
        """(bands, rows, cols) float32 of the values as stored; no data and unreadable blocks are NaN."""
        window = window or Window(0, 0, self.width, self.height)
        out = np.empty((len(bands), *(shape or (int(window.height), int(window.width)))), np.float32)
        if self.stack is not None:
            for i, b in enumerate(bands):
                out[i] = _read_band(self.stack, self.stack_bands.index(b) + 1, window, self, b, shape)
        else:
            for i, b in enumerate(bands):
                out[i] = _read_band(self.band_files[b], 1, window, self, b, shape)
        return out

    def stored_tags(self, bands: list[str]) -> tuple[list[float], list[float], str]:
        """Per band the (scale, offset) tags of its file, or of the SAFE product's metadata, and the
        data type of the first band."""
        scales, offsets, dtype = [], [], None
        for b in bands:
            if self.stack is not None:
                path, index = self.stack, self.stack_bands.index(b) + 1
            else:
                path, index = self.band_files[b], 1
            with _open(path) as ds:
                dtype = dtype or ds.dtypes[index - 1]
                scale, offset = ds.scales[index - 1], ds.offsets[index - 1]
            if b in self.product:
                scale, offset = self.product[b]
            scales.append(scale)
            offsets.append(offset)
        return scales, offsets, dtype

    def read_instances(self) -> np.ndarray:
        """Object instances (int32, 0 = none): one id per COCO annotation, or the connected
        components (8-connectivity) of each class of a label raster."""
        if self.coco is not None and self.label is None:
            return coco.instances(self.coco, (self.height, self.width))
        from scipy import ndimage

        labels = self.read_labels()
        out = np.zeros(labels.shape, np.int32)
        for value in np.unique(labels[labels > 0]):
            comp, n = ndimage.label(labels == value, np.ones((3, 3), bool))
            out[comp > 0] = comp[comp > 0] + out.max()
        return out

    def check_label_size(self) -> None:
        if self.label is not None:
            with _open(self.label) as ds:
                if (ds.height, ds.width) != (self.height, self.width):
                    raise ServiceError(f"labels of another size: {self.label.name} is {ds.height}x{ds.width} px "
                                       f"(rows x cols), tile {self.name} is {self.height}x{self.width}")

    @_gdal_env
    def read_labels(self) -> np.ndarray:
        """The raw label raster (uint8, tile size): values 0-255 as given; a reBEN reference map's
        CORINE codes as BigEarthNet's 19 classes (:data:`CLC_TO_BEN19`)."""
        if self.label is not None:
            self.check_label_size()
            with _open(self.label) as ds:
                if ds.crs and self.crs and ds.crs != self.crs:
                    raise ServiceError(f"labels {self.label.name} are in {ds.crs}, tile {self.name} in {self.crs}")
                data = _read_lenient(ds, 1, Window(0, 0, ds.width, ds.height), self.label, strict=True)
            if self.label_scheme == "clc":
                return _ben19(data, self.label)
            if np.issubdtype(data.dtype, np.floating):
                data = np.nan_to_num(data, nan=0)
            if data.min() < 0 or data.max() > 255 or (np.issubdtype(data.dtype, np.floating)
                                                       and not np.all(data == np.round(data))):
                raise ServiceError(f"labels {self.label.name} hold values outside the class ids 0-255")
            return data.astype(np.uint8)
        if self.coco is not None:
            return coco.rasterise(self.coco, (self.height, self.width))
        raise ServiceError(f"tile {self.name} has no labels: put {self.name}_label.tif (or a COCO .json) beside it")


class _UnitSample:
    """A tile's Sentinel-2 bands as :func:`components.common.reflectance.reflectance_units` samples
    a raster: the whole tile read once, decimated to at most SAMPLE_SIDE px a side (nearest
    pixels; overviews or JPEG 2000 resolution levels where the files have them), through the
    tile's own lenient reader (damaged blocks are no data), coarser bands on the finest grid;
    the scale/offset tags of each band's file (or of the SAFE product), the first band's type."""

    SAMPLE_SIDE = 256

    def __init__(self, tile: Tile, bands: list[str]):
        step = max(1, math.ceil(max(tile.height, tile.width) / self.SAMPLE_SIDE))
        shape = (math.ceil(tile.height / step), math.ceil(tile.width / step)) if step > 1 else None
        self.values = tile.read_raw(tuple(bands), shape=shape)
        self.count, self.height, self.width = self.values.shape
        self.scales, self.offsets, dtype = tile.stored_tags(bands)
        self.dtypes = [dtype] * self.count

    def read(self, indexes, window: Window | None = None) -> np.ndarray:
        rows, cols = (slice(None), slice(None)) if window is None else window.toslices()
        return self.values[[i - 1 for i in indexes]][:, rows, cols]

    def block_windows(self, bidx: int = 1):
        yield (0, 0), Window(0, 0, self.width, self.height)


# reBEN (BigEarthNet v2) reference maps hold CORINE Land Cover 2018 codes (uint16, 999 unlabelled);
# read as BigEarthNet's 19-class nomenclature (Sumbul et al. 2021, the classes of reBEN's scene
# labels), as the reBEN pipeline maps them (kai-tub/bigearthnet-pipeline, clc_code_18_to_ben19_name).
# Codes without a class there (roads, ports, airports, mines, dumps, construction, urban green, sport,
# bare rock, burnt areas, glaciers, intertidal flats) and 999 are background 0.
BEN19_NAMES = {1: "Urban fabric", 2: "Industrial or commercial units", 3: "Arable land", 4: "Permanent crops",
               5: "Pastures", 6: "Complex cultivation patterns",
               7: "Land principally occupied by agriculture, with significant areas of natural vegetation",
               8: "Agro-forestry areas", 9: "Broad-leaved forest", 10: "Coniferous forest", 11: "Mixed forest",
               12: "Natural grassland and sparsely vegetated areas",
               13: "Moors, heathland and sclerophyllous vegetation", 14: "Transitional woodland, shrub",
               15: "Beaches, dunes, sands", 16: "Inland wetlands", 17: "Coastal wetlands", 18: "Inland waters",
               19: "Marine waters"}
CLC_TO_BEN19 = {111: 1, 112: 1, 121: 2, 122: 0, 123: 0, 124: 0, 131: 0, 132: 0, 133: 0, 141: 0, 142: 0,
                211: 3, 212: 3, 213: 3, 221: 4, 222: 4, 223: 4, 231: 5, 241: 4, 242: 6, 243: 7, 244: 8,
                311: 9, 312: 10, 313: 11, 321: 12, 322: 13, 323: 13, 324: 14, 331: 15, 332: 0, 333: 12,
                334: 0, 335: 0, 411: 16, 412: 16, 421: 17, 422: 17, 423: 0, 511: 18, 512: 18, 521: 19,
                522: 19, 523: 19, 999: 0, 0: 0}
REFERENCE_MAP = "_reference_map"


def _ben19(data: np.ndarray, path: Path) -> np.ndarray:
    """CORINE codes of a reference map as BigEarthNet-19 class ids (uint8)."""
    codes = np.unique(data)
    unknown = [v for v in codes.tolist() if v not in CLC_TO_BEN19]
    if unknown:
        raise ServiceError(f"reference map {Path(path).name} holds {', '.join(f'{v:g}' for v in unknown[:5])}, not "
                           "CORINE Land Cover codes (111-523, 999 unlabelled) as reBEN's reference maps do")
    lut = np.zeros(1000, np.uint8)
    for code, cls in CLC_TO_BEN19.items():
        lut[code] = cls
    return lut[data.astype(np.int64)]


def _open(path: Path):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise ServiceError(f"cannot open raster {Path(path).name}: {' '.join(str(e).split())}") from None


def _read_band(path: Path, index: int, window: Window, tile: Tile, band: str,
               shape: tuple[int, int] | None = None) -> np.ndarray:
    with _open(path) as ds:
        if shape is None and (ds.height, ds.width) == (tile.height, tile.width):
            data = _read_lenient(ds, index, window, path)
        else:  # coarser band (bilinear to the tile grid) or a decimated read (nearest)
            sy, sx = ds.height / tile.height, ds.width / tile.width
            src = Window(window.col_off * sx, window.row_off * sy, window.width * sx, window.height * sy)
            try:
                data = ds.read(index, window=src, out_shape=shape or (int(window.height), int(window.width)),
                               resampling=Resampling.nearest if shape else Resampling.bilinear,
                               masked=False).astype(np.float32)
            except rasterio.errors.RasterioIOError as e:
                raise ServiceError(f"cannot read {Path(path).name}: {' '.join(str(e).split())}") from None
        nodata = ds.nodatavals[index - 1]
    if nodata is None and band in tile.product:  # a SAFE's band files: DN 0 is no data (SPECIAL_VALUE_NODATA)
        nodata = NODATA_DN
    data = data.astype(np.float32, copy=False)
    if nodata is not None and not np.isnan(nodata):
        data[data == nodata] = np.nan
    return data


def _read_lenient(ds, index: int, window: Window, path: Path, strict: bool = False) -> np.ndarray:
    """Read a window; when GDAL fails on it, read block by block and fill the bad ones with NaN."""
    try:
        return ds.read(index, window=window)
    except rasterio.errors.RasterioIOError as e:
        first_error = " ".join(str(e).split())
    if strict:
        raise ServiceError(f"cannot read {Path(path).name}: {first_error}")
    out = np.full((int(window.height), int(window.width)), np.nan, np.float32)
    bad = total = 0
    for _, block in ds.block_windows(index):
        try:
            inter = block.intersection(window)
        except rasterio.errors.WindowError:
            continue
        total += inter.width * inter.height
        r0, c0 = int(inter.row_off - window.row_off), int(inter.col_off - window.col_off)
        try:
            out[r0:r0 + int(inter.height), c0:c0 + int(inter.width)] = ds.read(index, window=inter)
        except rasterio.errors.RasterioIOError:
            bad += inter.width * inter.height
    fraction = bad / max(total, 1)
    if fraction > MAX_BAD_FRACTION:
        raise ServiceError(f"cannot read {Path(path).name}: {fraction:.0%} of the window is unreadable "
                           f"({first_error})")
    log.warning("%s: %.1f %% of the window unreadable (damaged blocks), read as no data", Path(path).name,
                100 * fraction)
    return out


# ------------------------------------------------------------------------------------------
# Discovery


def _band_token(stem: str) -> tuple[str, str] | None:
    """(band, stem with the token replaced by '{band}') when the file name names one band."""
    matches = list(_BAND_TOKEN.finditer(stem))
    if len(matches) != 1:
        return None
    m = matches[0]
    band = normalise_band(m.group(1))
    if band not in BAND_NAMES:
        return None
    return band, stem[:m.start()] + "{band}" + stem[m.end():]


def _strip_label(stem: str) -> str | None:
    m = _LABEL_RE.search(stem)
    return stem[:m.start()] if m else None


def _clean_name(key: str) -> str:
    name = key.replace("{band}", "")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.-")
    return re.sub(r"_+", "_", name) or "tile"


@_gdal_env
def find_tiles(root: str | Path) -> list[Tile]:
    """Every tile under ``root`` (a folder, searched recursively, or one raster file)."""
    root = Path(root)
    if not root.exists():
        raise ServiceError(f"input not found: {root}")
    _refuse_inside_product(root)
    tiles: list[Tile] = []
    if root.is_file() and root.suffix.lower() == ".zip":  # a zipped SAFE product
        tiles.append(_product_tile(root))
        files_by_dir = {}
    elif root.is_file():
        files_by_dir = {root.parent: [root]}
    else:
        files = [p for p in files_under(root) if p.is_file() and not p.name.startswith(".")]
        products = sorted({p.parent for p in files if p.name in SAFE_METADATA})
        tiles.extend(_product_tile(p) for p in products)
        files_by_dir = defaultdict(list)
        for p in files:
            if not any(safe in p.parents for safe in products):
                files_by_dir[p.parent].append(p)
    for folder, files in sorted(files_by_dir.items()):
        tiles.extend(_tiles_in(folder, files, root))
    _reference_maps_elsewhere(tiles, [f for fs in files_by_dir.values() for f in fs])
    for t in tiles:
        if t.label is not None and Path(t.label).stem.lower().endswith(REFERENCE_MAP):
            t.label_scheme = "clc"
    if not tiles:
        raise ServiceError(f"no Sentinel-2 tiles (GeoTIFF/JP2 rasters) found in {root}")
    names = [t.name for t in tiles]
    for t in tiles:  # unique names
        if names.count(t.name) > 1:
            t.name = _clean_name(str(t.folder.relative_to(root if root.is_dir() else root.parent)) + "_" + t.name)
    return tiles


def _refuse_inside_product(root: Path) -> None:
    """A folder or file inside a SAFE product (IMG_DATA/R10m, a granule): the band files' offset and
    quantification are in the product's metadata, above it."""
    for parent in root.resolve().parents:
        if any((parent / name).is_file() for name in SAFE_METADATA):
            raise ServiceError(f"{root} lies inside the Sentinel-2 product {parent.name}: give the product "
                               f"folder ({parent}) or its .zip, whose metadata holds the offset and quantification "
                               "of its band files")


def _product_tile(path: Path) -> Tile:
    """A Sentinel-2 SAFE product (folder or .zip) as one tile: per band its native-resolution file
    (else the finest resampled copy ESA ships, up to 60 m), read with the product's quantification
    value and ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` (baselines 04.00 and later), DN 0 no data;
    its labels: a label raster beside the product named after it."""
    from components.common.sentinel2 import open_product

    prod = open_product(path)
    tile = Tile(prod.name, Path(path), keys={prod.name, Path(path).stem, re.sub(r"\.SAFE$", "", Path(path).stem)})
    for band in BAND_NAMES:
        if not any(b == band for b, _ in prod.band_files):
            continue
        try:
            rel, _ = prod.band_source(band, 60)
        except ServiceError:  # listed, but no file at any resolution: the tile lacks the band
            continue
        gdal = prod.gdal_path(rel)
        tile.band_files[band] = gdal if gdal.startswith("/vsi") else Path(gdal)  # Path would fold /vsizip//abs
        tile.product[band] = prod.scale_offset(band)
    if not tile.band_files:
        raise ServiceError(f"Sentinel-2 product {prod.name} holds none of its band files")
    offsets = sorted({round(o * prod.quantification) for _, o in tile.product.values()})
    off_tag = "BOA_ADD_OFFSET" if prod.level == "L2A" else "RADIO_ADD_OFFSET"
    tile.product_note = (f"{prod.level} product, baseline {prod.baseline}: reflectance = (DN"
                         f"{' + ' + off_tag + ' ' + '/'.join(f'{o:g}' for o in offsets) if any(offsets) else ''}) / "
                         f"{prod.quantification:g} (quantification value), from its metadata")
    if Path(path).is_dir():
        for f in sorted(Path(path).parent.iterdir()):
            base = _strip_label(f.stem) if f.suffix.lower() in RASTER_SUFFIXES else None
            if base is not None and base in tile.keys:
                tile.label = f
                break
    _describe(tile)
    return tile


def _reference_maps_elsewhere(tiles: list[Tile], files: list[Path]) -> None:
    """reBEN's layout keeps each patch's reference map in its own tree
    (``Reference_Maps/<product>/<patch>/<patch>_reference_map.tif``, beside
    ``BigEarthNet-S2/<product>/<patch>/<patch>_B02.tif``): an unlabelled tile takes the reference
    map named after it, wherever it lies under the input."""
    maps = defaultdict(list)
    for f in files:
        if f.suffix.lower() in RASTER_SUFFIXES and f.stem.lower().endswith(REFERENCE_MAP):
            maps[f.stem[:-len(REFERENCE_MAP)]].append(f)
    for t in tiles:
        if t.has_labels:
            continue
        found = {f for key in t.keys | {t.name} for f in maps.get(key, [])}
        if len(found) == 1:
            t.label = found.pop()


def files_under(root: Path) -> list[Path]:
    """Every file under the folder ``root``, sorted, linked folders followed (a folder of links to
    scenes is how a training set is often assembled); each real folder is read once, so a link
    back up the tree cannot loop."""
    seen, out = set(), []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()  # a folder reached twice keeps its first path in name order
        out += [Path(folder) / f for f in files]
    return sorted(out)


def _tiles_in(folder: Path, files: list[Path], root: Path) -> list[Tile]:
    rasters = [f for f in files if f.suffix.lower() in RASTER_SUFFIXES]
    jsons = [f for f in files if f.suffix.lower() == ".json" and coco.is_coco(f)]
    labels = {}
    groups: dict[str, dict[str, Path]] = defaultdict(dict)
    stacks: list[Path] = []
    for f in rasters:
        base = _strip_label(f.stem)
        if base is not None:
            labels[base] = f
            continue
        token = _band_token(f.stem)
        if token:
            band, key = token
            if band in groups[key]:
                raise ServiceError(f"two files for band {band} in {folder}: {groups[key][band].name}, {f.name}")
            groups[key][band] = f
        else:
            stacks.append(f)
    tiles: list[Tile] = []
    for key, band_files in groups.items():
        keys = {key.replace("{band}", "").strip("_-. "), key.replace("_{band}", "").replace("{band}", "")}
        tiles.append(Tile(_clean_name(key), folder, band_files=dict(band_files), keys=keys))
    for f in stacks:
        tiles.append(Tile(_clean_name(f.stem), folder, stack=f, keys={f.stem}))
    cocos = {f.stem: f for f in jsons}
    for t in tiles:
        for key in t.keys:
            if key in labels:
                t.label = labels[key]
            elif key in cocos or f"{key}_coco" in cocos:
                t.coco = cocos.get(key) or cocos[f"{key}_coco"]
    if len(tiles) == 1 and not tiles[0].has_labels:
        if len(labels) == 1 and not jsons:
            tiles[0].label = next(iter(labels.values()))
        elif len(jsons) == 1 and not labels:
            tiles[0].coco = jsons[0]
    if len(tiles) == 1 and tiles[0].stack is None and root.is_dir():
        tiles[0].name = _clean_name(folder.name)  # a folder per band-file tile: the folder names it
    for t in tiles:
        _describe(t)
    return tiles


def _describe(t: Tile) -> None:
    """Grid and band names from the files."""
    if t.stack is not None:
        with _open(t.stack) as ds:
            t.width, t.height, t.crs, t.transform = ds.width, ds.height, ds.crs, ds.transform
            t.nodata = ds.nodata
            names = []
            for i, d in enumerate(ds.descriptions, 1):
                b = normalise_band(d) if d else ""
                names.append(b if b in BAND_NAMES else f"band{i}")
            if len(set(names)) != len(names):
                names = [f"band{i}" for i in range(1, ds.count + 1)]
            t.stack_bands = tuple(names)
        return
    finest = None
    for b, f in t.band_files.items():
        with _open(f) as ds:
            if ds.count != 1:
                raise ServiceError(f"{Path(f).name} is named after band {b} but holds {ds.count} bands")
            if finest is None or ds.width * ds.height > finest[0] * finest[1]:
                finest = (ds.width, ds.height, ds.crs, ds.transform, ds.nodata)
    t.width, t.height, t.crs, t.transform, t.nodata = finest


# ------------------------------------------------------------------------------------------
# Labels to classes


def class_lut(selected: tuple[int, ...], simplified: bool) -> np.ndarray:
    """Raw label value (0-255) -> class index (0 background, i for the i-th selected class)."""
    lut = np.zeros(256, np.uint8)
    for i, c in enumerate(selected, 1):
        lut[c] = i
    if simplified:
        igbp = np.zeros(256, np.uint8)
        igbp[:len(IGBP_SIMPLIFIED)] = IGBP_SIMPLIFIED
        lut = lut[igbp]
    return lut


def resolve_bands(tiles: list[Tile], wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The bands to use: ``wanted`` (checked against every tile) or those every tile has."""
    if wanted:
        for t in tiles:
            t.check_bands(wanted)
        return wanted
    common = [b for b in tiles[0].bands if all(b in t.bands for t in tiles[1:])]
    if not common:
        raise ServiceError("the tiles have no band in common: " +
                           "; ".join(f"{t.name}: {', '.join(t.bands)}" for t in tiles[:4]))
    return tuple(common)
