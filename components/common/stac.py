"""The STAC items of every service, written in one place: services give their facts (the product,
its bands and classes, the mission, the sources) and get a STAC 1.1 item with each extension
declared for the fields it carries.

Extensions and their versions (those pystac 1.15.2 declares wherever it has a class for them):

- projection v2.0.0, file v2.1.0, classification v2.0.0, sat v1.0.0, sar v1.0.0, mgrs v1.0.0:
  written through pystac's extension classes;
- eo v2.0.0 and raster v2.0.0: STAC 1.1 ``bands`` carry ``eo:common_name``,
  ``eo:center_wavelength``, ``raster:scale`` and ``raster:offset``. pystac 1.15.2's classes for
  these two write the STAC 1.0 arrays ``eo:bands`` / ``raster:bands`` (eo v1.1.0, raster v1.1.0),
  which STAC 1.1 clients no longer read, so these fields are set here directly;
- processing v1.2.0 and sentinel-2 v1.0.0: pystac has no class; set here directly.

The tile of a Sentinel-2 product goes into the MGRS extension (``s2:mgrs_tile`` is deprecated in
the Sentinel-2 extension). Every asset gets ``file:size`` and ``file:checksum`` (a sha2-256
multihash) when the item is written (:func:`write_item`), so items are written last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pystac
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.mgrs import MgrsExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension
from pystac.extensions.sat import OrbitState, SatExtension

from . import outputs

EO = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
SENTINEL2 = "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json"

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
# eo:common_name of the MSI bands (the names the eo extension lists)
S2_COMMON_NAMES = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge071",
                   "B6": "rededge075", "B7": "rededge078", "B8": "nir", "B8A": "nir08", "B9": "nir09",
                   "B10": "cirrus", "B11": "swir16", "B12": "swir22"}
_MGRS = re.compile(r"^T?(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z][A-HJ-NP-V])$")


@dataclass(frozen=True)
class Band:
    """One band of a raster product. ``scale``/``offset`` turn the stored values into ``unit``;
    ``center_wavelength`` is in micrometres."""
    name: str
    description: str | None = None
    nodata: float | None = None
    unit: str | None = None
    scale: float | None = None
    offset: float | None = None
    common_name: str | None = None
    center_wavelength: float | None = None


def s2_band(name: str, description: str, nodata: float | None, scale: float | None = None,
            offset: float | None = None) -> Band:
    """A Sentinel-2 MSI band (B1 ... B12) with its common name and centre wavelength."""
    from .sentinel2 import BAND_WAVELENGTH_NM

    return Band(name, description, nodata, unit=None, scale=scale, offset=offset,
                common_name=S2_COMMON_NAMES.get(name),
                center_wavelength=round(BAND_WAVELENGTH_NM[name] / 1000.0, 5) if name in BAND_WAVELENGTH_NM else None)


@dataclass(frozen=True)
class Class:
    """One value of a class map; ``name`` is made machine-readable (the extension allows
    letters, digits, - and _), ``title`` keeps the name as people read it."""
    value: int
    name: str
    description: str | None = None
    color: tuple[int, int, int] | None = None
    nodata: bool = False
    count: int | None = None
    percentage: float | None = None


def location(outdir: str, name: str) -> str:
    """Where ``name`` is once published in ``outdir`` (a folder or an ``s3://`` prefix)."""
    if "://" in outdir:
        return f"{outdir.rstrip('/')}/{name}"
    return str(Path(outdir).absolute() / name)


def source_href(uri: str) -> str:
    """The source product as a link target: a URI as given, a local path made absolute."""
    return uri if "://" in uri else str(Path(uri).absolute())


def _utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.timezone.utc) if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _declare(item: pystac.Item, uri: str) -> None:
    if uri not in item.stac_extensions:
        item.stac_extensions.append(uri)


def _nodata(value: float | None):
    # STAC 1.1 spells the non-finite nodata values as strings (JSON has no NaN)
    if value is not None and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _band_json(band: Band, data_type: str) -> dict:
    out = {"name": band.name, "description": band.description, "nodata": _nodata(band.nodata), "data_type": data_type,
           "unit": band.unit, "eo:common_name": band.common_name, "eo:center_wavelength": band.center_wavelength,
           "raster:scale": band.scale, "raster:offset": band.offset}
    return {k: v for k, v in out.items() if v is not None}


def raster_item(item_id: str, raster: Path, href: str, when: dt.datetime, bands: Iterable[Band], *,
                start: dt.datetime | None = None, end: dt.datetime | None = None, title: str | None = None,
                properties: dict | None = None, asset_key: str = "data", media_type: str | None = None) -> pystac.Item:
    """An item for the raster ``raster`` (read for its grid, footprint and data type), published
    as ``href`` beside the item: footprint in lon/lat, projection fields, the data asset and its
    bands."""
    import rasterio
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    with rasterio.open(raster) as ds:
        geometry, bbox = _across_antimeridian(ds.crs, ds.bounds) or (None, None)
        if geometry is None:
            geometry = transform_geom(ds.crs, "EPSG:4326", mapping(box(*ds.bounds)), antimeridian_cutting=True)
            bbox = list(shape(geometry).bounds)
        epsg = ds.crs.to_epsg()
        grid = {"shape": [ds.height, ds.width], "transform": list(ds.transform)[:6],
                "code": f"EPSG:{epsg}" if epsg else None, "wkt2": None if epsg else ds.crs.to_wkt()}
        data_type = ds.dtypes[0]
    item = pystac.Item(item_id, geometry, bbox, None if start and end else _utc(when),
                       dict(properties or {}), start_datetime=start and _utc(start),
                       end_datetime=end and _utc(end))
    item.common_metadata.title = title
    ProjectionExtension.ext(item, add_if_missing=True).apply(**grid)
    add_raster_asset(item, asset_key, href, bands, data_type, media_type=media_type)
    return item


def _across_antimeridian(crs, bounds) -> tuple[dict, list[float]] | None:
    """GeoJSON footprint and bbox of a grid (smaller than a hemisphere) that crosses the
    antimeridian, None for one that does not: the footprint cut in two at it (RFC 7946, 3.1.9),
    the bbox's west then east of its east (5.2). GDAL's cutting misses a grid in lon/lat whose
    longitudes run on beyond 180."""
    import numpy as np
    import shapely
    import shapely.affinity
    from shapely.geometry import box, mapping

    from .output_grid import lonlat_outline

    lon, lat = lonlat_outline(crs, bounds, points=33)
    if lon.max() - lon.min() > 180.0 or (lon.min() >= -180.0 and lon.max() <= 180.0):
        return None
    if lon.min() < -180.0:
        lon = lon + 360.0  # the part beyond the antimeridian is the eastern one
    footprint = shapely.Polygon(np.column_stack([lon, lat]))
    west = shapely.intersection(footprint, box(-180.0, -90.0, 180.0, 90.0))
    east = shapely.affinity.translate(shapely.intersection(footprint, box(180.0, -90.0, 540.0, 90.0)), -360.0)
    parts = [g for part in (west, east) for g in getattr(part, "geoms", [part]) if g.area > 0]
    return (mapping(shapely.MultiPolygon(parts)),
            [float(lon.min()), float(lat.min()), float(lon.max()) - 360.0, float(lat.max())])


def vector_item(item_id: str, geometry: dict, bbox: list[float], href: str, media_type: str, when: dt.datetime, *,
                title: str | None = None, properties: dict | None = None) -> pystac.Item:
    """An item for a vector product (GeoJSON, GeoPackage) covering ``geometry`` (lon/lat)."""
    item = pystac.Item(item_id, geometry, bbox, _utc(when), dict(properties or {}))
    item.add_asset("data", pystac.Asset(href, title=title, media_type=media_type, roles=["data"]))
    return item


def add_raster_asset(item: pystac.Item, key: str, href: str, bands: Iterable[Band], data_type: str,
                     title: str | None = None, media_type: str | None = None) -> pystac.Asset:
    """A raster asset of the item (another one: a monthly composite of the same grid); a .tif is
    taken for a COG unless ``media_type`` says otherwise."""
    bands = [_band_json(b, data_type) for b in bands]
    media = media_type or (COG_TYPE if href.endswith(".tif") else "application/octet-stream")
    asset = pystac.Asset(href, title=title, media_type=media, roles=["data"], extra_fields={"bands": bands})
    item.add_asset(key, asset)
    if any(k.startswith("eo:") for b in bands for k in b):
        _declare(item, EO)
    if any(k.startswith("raster:") for b in bands for k in b):
        _declare(item, RASTER)
    return asset


def add_classes(item: pystac.Item, classes: Iterable[Class], asset_key: str = "data") -> None:
    """The legend of a single-band class map, on its asset (classification extension)."""
    found = []
    for c in classes:
        name = re.sub(r"[^0-9A-Za-z_-]+", "_", c.name.strip()).strip("_").lower() or f"class_{c.value}"
        found.append(Classification.create(
            c.value, description=c.description, name=name, title=c.name if name != c.name else None,
            color_hint="%02X%02X%02X" % c.color if c.color else None, nodata=c.nodata or None,
            count=c.count, percentage=c.percentage))
    ClassificationExtension.ext(item.assets[asset_key], add_if_missing=True).apply(classes=found)


def add_cloud_cover(item: pystac.Item, percent: float) -> None:
    item.properties["eo:cloud_cover"] = round(float(percent), 3)
    _declare(item, EO)


def add_mgrs_tile(item: pystac.Item, tile: str | None) -> None:
    """The MGRS tile (``29UNU``, ``T33UVP``), when the product has one."""
    match = _MGRS.match((tile or "").strip().upper())
    if match:
        zone, band, square = match.groups()
        MgrsExtension.ext(item, add_if_missing=True).apply(band, square, utm_zone=int(zone))


def add_sentinel2(item: pystac.Item, *, platform: str | None = None, tile: str | None = None,
                  baseline: str | None = None, product_uri: str | None = None) -> None:
    """Mission fields of a product made from Sentinel-2 data; ``baseline`` and ``product_uri``
    only for a product made from one Sentinel-2 product."""
    item.common_metadata.constellation = "sentinel-2"
    item.common_metadata.instruments = ["msi"]
    if platform:
        item.common_metadata.platform = platform.lower()
    add_mgrs_tile(item, tile)
    s2 = {"s2:processing_baseline": baseline, "s2:product_uri": product_uri}
    s2 = {k: v for k, v in s2.items() if v}
    if s2:
        item.properties.update(s2)
        _declare(item, SENTINEL2)


def add_sentinel1(item: pystac.Item, *, mission: str, mode: str, product_type: str, polarizations: Iterable[str],
                  relative_orbit: int | None = None, absolute_orbit: int | None = None,
                  orbit_state: str | None = None) -> None:
    """Mission, SAR and orbit fields of a product made from Sentinel-1 data (``mission``: S1A)."""
    item.common_metadata.constellation = "sentinel-1"
    item.common_metadata.platform = f"sentinel-1{mission[-1].lower()}"
    item.common_metadata.instruments = ["c-sar"]
    SarExtension.ext(item, add_if_missing=True).apply(
        mode, FrequencyBand.C, [Polarization(p.upper()) for p in polarizations], product_type)
    SatExtension.ext(item, add_if_missing=True).apply(
        orbit_state=OrbitState(orbit_state.lower()) if orbit_state else None, relative_orbit=relative_orbit,
        absolute_orbit=absolute_orbit)


def add_processing(item: pystac.Item, *, level: str | None = None, lineage: str | None = None) -> None:
    """How the product was made: the software and library versions, and when."""
    fields = {"processing:software": outputs.software_versions(),
              "processing:datetime": pystac.utils.datetime_to_str(dt.datetime.now(dt.timezone.utc)),
              "processing:level": level, "processing:lineage": lineage}
    item.properties.update({k: v for k, v in fields.items() if v})
    _declare(item, PROCESSING)


def add_sidecars(item: pystac.Item, quicklook: str | None, record: str | None = "run.json") -> None:
    """The quicklook PNG and the run record beside the product."""
    if quicklook:
        item.add_asset("thumbnail", pystac.Asset(quicklook, media_type=pystac.MediaType.PNG,
                                                 roles=["thumbnail", "overview"]))
    if record:
        item.add_asset("metadata", pystac.Asset(record, media_type=pystac.MediaType.JSON, roles=["metadata"],
                                                title="run record"))


def add_links(item: pystac.Item, self_href: str | None, sources: Iterable[tuple[str, str | None]] = ()) -> None:
    """``self`` (where the item is published) and one ``derived_from`` per source product
    (href, title)."""
    if self_href:
        item.add_link(pystac.Link("self", self_href, media_type=pystac.MediaType.GEOJSON))
    for href, title in sources:
        item.add_link(pystac.Link("derived_from", source_href(href), title=title))


def multihash(path: Path) -> str:
    """The sha2-256 multihash of a file, in hex: code 0x12, length 0x20, then the digest."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "1220" + digest.hexdigest()


def to_dict(item: pystac.Item, folder: Path) -> dict:
    """The item as JSON, each asset with the size and checksum of its file in ``folder``; a raster's
    GDAL sidecar (category names, attribute table) is listed as an asset of its own."""
    for key, asset in list(item.assets.items()):
        sidecar = f"{asset.href}.aux.xml"
        if asset.href.endswith(".tif") and (folder / sidecar).is_file():
            item.add_asset(f"{key}-gdal-metadata", pystac.Asset(
                sidecar, media_type=pystac.MediaType.XML, roles=["metadata"],
                title="GDAL category names and raster attribute table"))
    for key, asset in item.assets.items():
        path = folder / asset.href
        if not path.is_file():
            raise FileNotFoundError(f"STAC item {item.id}: asset {key} names {asset.href}, not written in {folder}")
        FileExtension.ext(asset, add_if_missing=True).apply(size=path.stat().st_size, checksum=multihash(path))
    return item.to_dict(include_self_link=True, transform_hrefs=False)


def write_item(item: pystac.Item, path: Path) -> Path:
    """Write ``item`` to ``path`` once every file it names is written beside it."""
    return outputs.write_json(path, to_dict(item, Path(path).parent))
