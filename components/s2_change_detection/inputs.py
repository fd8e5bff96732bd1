"""What each input of S2-CD is, and the checks made on the pair before any processing.

An input is either a Sentinel-2 product (SAFE folder or zip, Level-2A or Level-1C) or a stack
already pre-processed by S2-preprocess: its GeoTIFF (or the GDAL raster it wrote), or the
folder it wrote (the one holding its ``run.json``, which is what a Kubeflow ``Dataset`` artifact
of the S2-preprocess component is). Tile, sensing time and level come from the product metadata,
or, for a stack, from the ``PRODUCT`` and ``QUANTITY`` tags S2-preprocess writes (the file name
as a fallback).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from components.common.aoi import AoI, require_overlap
from components.common.errors import ServiceError
from components.common.output_grid import METRES_PER_DEGREE
from components.common.sentinel2 import S2Product, normalise_band, open_product

_TILE = re.compile(r"(?:^|_)(T\d{2}[A-Z]{3})(?:_|$)")
_SENSING = re.compile(r"_(\d{8}T\d{6})(?:_|$)")
PREPROCESS_SERVICE = "S2-preprocess"


@dataclass
class PairInput:
    """One input of the pair, identified."""

    role: str  # "input1" | "input2"
    uri: str
    local: Path
    kind: str  # "product" | "stack"
    name: str
    tile: str
    sensing: dt.datetime | None
    level: str  # "L2A" | "L1C" | "" (unknown)
    footprint_lonlat: object  # shapely geometry
    extent_m: tuple[float, float]  # width and height, metres (at METRES_PER_DEGREE on a grid in degrees)
    product: S2Product | None = None
    stack: Path | None = None
    stack_bands: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"role": self.role, "uri": self.uri, "kind": self.kind, "id": self.name, "tile": self.tile,
                "sensing": self.sensing.isoformat() if self.sensing else None, "level": self.level,
                **({"baseline": self.product.baseline} if self.product else {})}


def identify(role: str, uri: str, local: Path) -> PairInput:
    """Open ``local`` (the fetched ``uri``) as a product or a pre-processed stack."""
    try:
        return _identify(role, uri, Path(local))
    except ServiceError as e:
        raise ServiceError(f"{role}: {e.one_line()}") from None


def _identify(role: str, uri: str, local: Path) -> PairInput:
    if local.is_dir():
        if list(local.glob("MTD_MSIL[12][AC].xml")) or list(local.glob("*.SAFE")):
            return _product(role, uri, local)
        record = local / "run.json"
        if record.is_file():
            return _stack(role, uri, _stack_from_record(record))
        return _product(role, uri, local)  # open_product names what is missing
    if not local.exists():
        raise ServiceError(f"input not found: {uri}")
    if zipfile.is_zipfile(local) or local.suffix.lower() == ".zip":
        return _product(role, uri, local)
    return _stack(role, uri, local)


def _product(role: str, uri: str, local: Path) -> PairInput:
    product = open_product(local)
    left, bottom, right, top = product.grids[10].bounds
    return PairInput(role, uri, local, "product", product.name, product.tile, product.sensing_time,
                     product.level, product.footprint_lonlat, (right - left, top - bottom), product=product)


def _stack_from_record(record: Path) -> Path:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError) as e:
        raise ServiceError(f"unreadable run.json in {record.parent}: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("outputs") or {}, dict):
        raise ServiceError(f"run.json in {record.parent} is not the run record of {PREPROCESS_SERVICE} "
                           f"(a JSON object with its outputs)")
    if data.get("service") != PREPROCESS_SERVICE:
        raise ServiceError(f"{record.parent} holds the output of {data.get('service')!r}, not of "
                           f"{PREPROCESS_SERVICE} nor a Sentinel-2 product")
    name = (data.get("outputs") or {}).get("product")
    path = record.parent / str(name)
    if not name or not path.is_file():
        raise ServiceError(f"the S2-preprocess output in {record.parent} lacks its product {name}")
    return path


def _stack(role: str, uri: str, path: Path) -> PairInput:
    import rasterio
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    try:
        with rasterio.open(path) as ds:
            descriptions = tuple(ds.descriptions)
            tags = ds.tags()
            crs = ds.crs
            bounds = ds.bounds
    except rasterio.errors.RasterioError as e:
        raise ServiceError(f"neither a Sentinel-2 product nor a readable raster: {path.name} "
                           f"({' '.join(str(e).split())})") from None
    if crs is None:
        raise ServiceError(f"pre-processed stack {path.name} has no coordinate reference system")
    bands = tuple(normalise_band(d) if d else "" for d in descriptions)
    if not any(bands):
        raise ServiceError(f"{path.name} is not a stack written by S2-preprocess: its bands have no "
                           f"names (B2, B3, ...)")
    name = tags.get("PRODUCT") or path.stem
    tile = _match(_TILE, name) or _match(_TILE, path.stem)
    sensing = _match(_SENSING, name) or _match(_SENSING, path.stem)
    quantity = tags.get("QUANTITY", "")
    level = "L2A" if "BOA" in quantity or "MSIL2A" in name else "L1C" if "TOA" in quantity or "MSIL1C" in name else ""
    footprint = shape(transform_geom(crs, "EPSG:4326", mapping(box(*bounds))))
    metres = METRES_PER_DEGREE if crs.is_geographic else 1.0
    return PairInput(role, uri, path, "stack", re.sub(r"\.(SAFE|zip)$", "", name), tile,
                     dt.datetime.strptime(sensing, "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc) if sensing else None,
                     level, footprint, ((bounds.right - bounds.left) * metres, (bounds.top - bounds.bottom) * metres),
                     stack=path, stack_bands=bands)


def _match(pattern: re.Pattern, text: str) -> str:
    m = pattern.search(text or "")
    return m.group(1) if m else ""


def check_pair(first: PairInput, second: PairInput, bands: tuple[str, ...], resolution: float,
               aoi: AoI | None) -> None:
    """Every check that needs no pixel: same tile, same level, bands present, overlap, AoI."""
    if first.tile and second.tile and first.tile != second.tile:
        raise ServiceError(f"input1 and input2 cover different tiles: {first.tile} ({first.name}) and "
                           f"{second.tile} ({second.name}); change detection compares two acquisitions "
                           f"of the same tile")
    if first.tile == second.tile and first.sensing is not None and first.sensing == second.sensing:
        raise ServiceError(f"input1 and input2 are the same acquisition: {first.tile or 'one tile'} sensed "
                           f"{first.sensing:%Y-%m-%d %H:%M:%S} ({first.name} and {second.name}); change "
                           f"detection compares two dates")
    if first.level and second.level and first.level != second.level:
        raise ServiceError(f"input1 is {first.level} and input2 {second.level}: give two products of the "
                           f"same processing level")
    for item in (first, second):
        if item.kind == "product":
            for band in bands:
                item.product.band_source(band, resolution)
            if item.level == "L2A":  # the cloud mask and the same-class criterion
                item.product.band_source("SCL", resolution)
            else:
                kind = next((k for k in ("MSK_CLASSI", "MSK_CLOUDS") if k in item.product.mask_files), None)
                if kind is None:
                    raise ServiceError(f"{item.role}: {item.name} lists no cloud mask (MSK_CLASSI or MSK_CLOUDS)")
                item.product.require_file(item.product.mask_files[kind], "cloud mask")
        else:
            missing = [b for b in bands if b not in item.stack_bands]
            if missing:
                raise ServiceError(f"{item.role}: pre-processed stack {item.local.name} lacks band(s) "
                                   f"{','.join(missing)} (it has {','.join(b for b in item.stack_bands if b)})")
    for item in (first, second):
        if aoi is not None:
            try:
                require_overlap(aoi, item.footprint_lonlat, item.name)
            except ServiceError as e:
                raise ServiceError(f"{item.role}: {e.one_line()}") from None
    if not tile_overlap(first, second):
        raise ServiceError(f"input1 ({first.name}) and input2 ({second.name}) do not overlap")


def tile_overlap(first: PairInput, second: PairInput) -> bool:
    import shapely

    a, b = first.footprint_lonlat, second.footprint_lonlat
    a = a if a.is_valid else shapely.make_valid(a)
    b = b if b.is_valid else shapely.make_valid(b)
    return a.intersects(b) and shapely.intersection(a, b).area > 0


def check_tile_names(first: str, second: str) -> str:
    """The tile named by both inputs (URIs or paths of products named the ESA way); a
    ServiceError when they name different tiles or one acquisition twice. A name without a tile
    passes (the service checks the metadata)."""
    from pathlib import PurePosixPath

    names = [PurePosixPath(str(u).rstrip("/")).name for u in (first, second)]
    tiles = [_match(_TILE, n) for n in names]
    if all(tiles) and tiles[0] != tiles[1]:
        raise ServiceError(f"input1 and input2 cover different tiles: {tiles[0]} ({first}) and {tiles[1]} "
                           f"({second}); change detection compares two acquisitions of the same tile")
    sensed = [_match(_SENSING, n) for n in names]
    if all(tiles) and all(sensed) and sensed[0] == sensed[1]:
        raise ServiceError(f"input1 and input2 are the same acquisition: {tiles[0]} sensed {sensed[0]} ({first} "
                           f"and {second}); change detection compares two dates")
    return tiles[0] or tiles[1]
