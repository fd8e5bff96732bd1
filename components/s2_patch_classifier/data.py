"""Sentinel-2 tiles and their labels, found in a folder.

A *tile* is either a multi-band raster (a GeoTIFF stack whose band descriptions name the bands,
as ``S2-preprocess`` writes them) or a set of single-band rasters whose file names carry the band
(``..._B02_...tif``, ``T29UNU_..._B8A_20m.jp2``): files in one folder that differ only by the
band token form one tile. Bands at a coarser resolution are resampled (bilinear) to the finest.

Its *labels* are, in this order of preference:

- a raster beside it named like the tile with ``_label``/``_labels``/``_mask``/``_gt``
  (``T1.tif`` -> ``T1_label.tif``; for per-band tiles the name without the band token);
- a COCO JSON named like the tile (``T1.json``, ``T1_coco.json``);
- the only label raster or COCO JSON of a folder holding a single tile (the sen2ships layout:
  ``<port>/<bands>.tiff`` + ``<port>/<port>_coco.json``).

Label values: 0 = background/unknown, 1..255 = classes (seed D5.2 section 3.2.1.5).

Reading is lenient with damaged files: a block that GDAL cannot decode becomes no data (NaN)
with a warning, up to :data:`MAX_BAD_FRACTION` of the tile; beyond that it is an error.
"""

from __future__ import annotations

import logging
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
from components.common.sentinel2 import BAND_NAMES, normalise_band

from . import coco

log = logging.getLogger(__name__)

RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt", ".img"}
LABEL_TOKENS = ("label", "labels", "mask", "gt", "annotation", "annotations")
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

    @_gdal_env
    def read(self, bands: tuple[str, ...], window: Window | None = None,
             shape: tuple[int, int] | None = None) -> np.ndarray:
        """(bands, rows, cols) float32 of raw values; no data and unreadable blocks are NaN.
        ``shape`` (rows, cols): the window decimated to that size (nearest pixels; GDAL reads
        overviews or JPEG 2000 resolution levels where the file has them), for statistics."""
        window = window or Window(0, 0, self.width, self.height)
        out = np.empty((len(bands), *(shape or (int(window.height), int(window.width)))), np.float32)
        if self.stack is not None:
            for i, b in enumerate(bands):
                out[i] = _read_band(self.stack, self.stack_bands.index(b) + 1, window, self, b, shape)
        else:
            for i, b in enumerate(bands):
                out[i] = _read_band(self.band_files[b], 1, window, self, b, shape)
        for i, b in enumerate(bands):
            if self.offsets.get(b):
                out[i] += self.offsets[b]
        return out

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
        """The raw label raster (uint8, tile size): values 0-255 as given."""
        if self.label is not None:
            self.check_label_size()
            with _open(self.label) as ds:
                if ds.crs and self.crs and ds.crs != self.crs:
                    raise ServiceError(f"labels {self.label.name} are in {ds.crs}, tile {self.name} in {self.crs}")
                data = _read_lenient(ds, 1, Window(0, 0, ds.width, ds.height), self.label, strict=True)
            if np.issubdtype(data.dtype, np.floating):
                data = np.nan_to_num(data, nan=0)
            if data.min() < 0 or data.max() > 255 or (np.issubdtype(data.dtype, np.floating)
                                                       and not np.all(data == np.round(data))):
                raise ServiceError(f"labels {self.label.name} hold values outside the class ids 0-255")
            return data.astype(np.uint8)
        if self.coco is not None:
            return coco.rasterise(self.coco, (self.height, self.width))
        raise ServiceError(f"tile {self.name} has no labels: put {self.name}_label.tif (or a COCO .json) beside it")


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
    if root.is_file():
        files_by_dir = {root.parent: [root]}
    else:
        files_by_dir = defaultdict(list)
        for p in files_under(root):
            if p.is_file() and not p.name.startswith("."):
                files_by_dir[p.parent].append(p)
    tiles: list[Tile] = []
    for folder, files in sorted(files_by_dir.items()):
        tiles.extend(_tiles_in(folder, files, root))
    if not tiles:
        raise ServiceError(f"no Sentinel-2 tiles (GeoTIFF/JP2 rasters) found in {root}")
    names = [t.name for t in tiles]
    for t in tiles:  # unique names
        if names.count(t.name) > 1:
            t.name = _clean_name(str(t.folder.relative_to(root if root.is_dir() else root.parent)) + "_" + t.name)
    return tiles


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
                raise ServiceError(f"{f.name} is named after band {b} but holds {ds.count} bands")
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
