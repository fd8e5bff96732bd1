"""Writing features: RFC 7946 GeoJSON (streamed), GeoPackage (one layer per class), a quicklook
PNG and the STAC item of the product.

GeoJSON follows RFC 7946: WGS 84 lon/lat without a ``crs`` member, polygon exteriors
counter-clockwise and holes clockwise, coordinates rounded to 7 decimals (OSM's own
precision), a ``bbox`` member. Each feature's ``id`` is ``<class>/<osm type>/<osm id>``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from pathlib import Path
from typing import Iterable

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from components.common.outputs import atomic_path

from .dictionary import Dictionary
from .extract import Feature

# pyogrio logs every layer it writes at INFO; one summary line per product is ours to give.
logging.getLogger("pyogrio").setLevel(logging.WARNING)

PRECISION = 7
GEOJSON_TYPE = "application/geo+json"
GPKG_TYPE = "application/geopackage+sqlite3"
ODBL = "https://opendatacommons.org/licenses/odbl/1-0/"
ATTRIBUTION = "© OpenStreetMap contributors, ODbL 1.0"
_BATCH = 5000
CATEGORY_COLOURS = {
    "transport": (200, 60, 40), "roads": (120, 120, 120), "security": (150, 0, 150),
    "energy": (230, 160, 0), "water": (30, 110, 220), "health": (220, 0, 60),
    "education": (0, 150, 140), "emergency": (240, 40, 0), "government": (90, 60, 170),
    "built_up": (150, 110, 80), "religion": (110, 150, 40), "industry": (90, 90, 40),
}


def rfc7946(geometry: BaseGeometry) -> BaseGeometry:
    """Exterior rings counter-clockwise, holes clockwise (RFC 7946 section 3.1.6)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return shapely.orient_polygons(geometry, exterior_cw=False)
    return geometry


def _round(coords):
    if isinstance(coords, (float, int)):
        return round(float(coords), PRECISION)
    return [_round(c) for c in coords]


def geometry_json(geometry: BaseGeometry) -> dict:
    g = mapping(rfc7946(geometry))
    return {"type": g["type"], "coordinates": _round(g["coordinates"])}


def feature_json(feature: Feature, geometry: BaseGeometry | None = None) -> str:
    """One GeoJSON Feature as compact JSON text."""
    return json.dumps({"type": "Feature", "id": feature.id,
                       "geometry": geometry_json(geometry if geometry is not None else feature.geometry),
                       "properties": feature.properties}, ensure_ascii=False, separators=(",", ":"))


class Bounds:
    def __init__(self):
        self.box: list[float] | None = None

    def add(self, geometry: BaseGeometry) -> None:
        minx, miny, maxx, maxy = geometry.bounds
        if self.box is None:
            self.box = [minx, miny, maxx, maxy]
        else:
            b = self.box
            b[0], b[1], b[2], b[3] = min(b[0], minx), min(b[1], miny), max(b[2], maxx), max(b[3], maxy)


def write_geojson(features: Iterable[Feature], path: Path, bounds: Bounds, sink=None) -> int:
    """Stream features into a FeatureCollection at ``path`` (atomically); their count.
    ``sink(feature)`` sees every feature (for the quicklook)."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write('{"type":"FeatureCollection","features":[\n')
        for f in features:
            out.write((",\n" if n else "") + feature_json(f))
            bounds.add(f.geometry)
            if sink is not None:
                sink(f)
            n += 1
        out.write("\n]")
        if bounds.box is not None:
            out.write(',"bbox":' + json.dumps(_round(bounds.box)))
        out.write("}\n")
    return n


def write_gpkg(features: Iterable[Feature], path: Path, dictionary: Dictionary, classes: tuple[str, ...],
               bounds: Bounds, sink=None) -> int:
    """One layer per class (every requested class, empty ones too), batched appends."""
    import pyogrio

    n = 0
    buffers: dict[str, list[Feature]] = {c: [] for c in classes}
    created: set[str] = set()

    def flush(name: str) -> None:
        _write_layer(path, dictionary, name, buffers[name], append=bool(created))
        created.add(name)
        buffers[name].clear()

    # The file sits in the run's private stage folder and is published only once complete, so
    # SQLite need not sync every transaction to disk (3x faster for many small layers).
    previous = pyogrio.get_gdal_config_option("OGR_SQLITE_SYNCHRONOUS")
    pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": "OFF"})
    try:
        for f in features:
            buffers[f.cls].append(f)
            bounds.add(f.geometry)
            if sink is not None:
                sink(f)
            n += 1
            if len(buffers[f.cls]) >= _BATCH:
                flush(f.cls)
        for name in classes:
            if buffers[name] or name not in created:
                flush(name)
    finally:
        pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": previous})
    return n


def _write_layer(path: Path, dictionary: Dictionary, name: str, batch: list[Feature], append: bool) -> None:
    import pyogrio.raw

    cls = dictionary.classes[name]
    kinds = {"class": "str", "category": "str", "osm_type": "str", "osm_id": "int64",
             "osm_timestamp": "str", **{a.name: "str" for a in dictionary.common},
             **{a.name: a.type for a in cls.attributes}}
    fields, data, masks = [], [], []
    for field_name, kind in kinds.items():
        values = [f.properties.get(field_name) for f in batch]
        missing = np.array([v is None for v in values], dtype=bool)
        if kind == "str":
            arr = np.array(values, dtype=object)
            mask = None
        elif kind == "float":
            arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            mask = None
        elif kind == "bool":
            arr = np.array([bool(v) for v in values], dtype=bool)
            mask = missing
        else:  # int, int64
            arr = np.array([0 if v is None else v for v in values], dtype=np.int64)
            mask = missing
        fields.append(field_name)
        data.append(arr)
        masks.append(mask)
    geoms = np.array([shapely.to_wkb(rfc7946(f.geometry)) for f in batch], dtype=object)
    shapely_types = sorted(cls.geometry)
    geometry_type = {("point",): "Point", ("line",): "MultiLineString",
                     ("polygon",): "MultiPolygon"}.get(tuple(shapely_types), "Unknown")
    pyogrio.raw.write(str(path), geoms, data, fields, field_mask=masks, layer=name, driver="GPKG",
                      geometry_type=geometry_type, crs="EPSG:4326", append=append,
                      promote_to_multi=geometry_type.startswith("Multi"),
                      layer_options={"DESCRIPTION": cls.title})


class Quicklook:
    """A PNG drawing of the features (equirectangular, lon scaled by cos(lat)), coloured by
    category; the AoI outline in black."""

    def __init__(self, max_size: int = 1024):
        self.max_size = max_size
        self.items: list[tuple[str, BaseGeometry]] = []

    def add(self, feature: Feature) -> None:
        self.items.append((feature.properties["category"], feature.geometry))

    def save(self, png: Path, extent: tuple[float, float, float, float] | None,
             aoi: BaseGeometry | None = None) -> Path:
        from PIL import Image, ImageDraw

        if extent is None:
            extent = (0.0, 0.0, 1.0, 1.0)
        minx, miny, maxx, maxy = extent
        kx = math.cos(math.radians((miny + maxy) / 2))
        w_deg, h_deg = max((maxx - minx) * kx, 1e-9), max(maxy - miny, 1e-9)
        scale = (self.max_size - 20) / max(w_deg, h_deg)
        width, height = int(w_deg * scale) + 20, int(h_deg * scale) + 20

        def xy(coords) -> list[tuple[float, float]]:
            return [(10 + (x - minx) * kx * scale, 10 + (maxy - y) * scale) for x, y in coords]

        img = Image.new("RGBA", (width, height), (255, 255, 255, 255))
        draw = ImageDraw.Draw(img, "RGBA")
        order = {"Polygon": 0, "MultiPolygon": 0, "LineString": 1, "MultiLineString": 1}
        for category, geom in sorted(self.items, key=lambda i: order.get(i[1].geom_type, 2)):
            colour = CATEGORY_COLOURS.get(category, (60, 60, 60))
            for part in shapely.get_parts(geom):
                if part.geom_type == "Polygon":
                    draw.polygon(xy(part.exterior.coords), fill=colour + (90,), outline=colour + (255,))
                elif part.geom_type == "LineString":
                    draw.line(xy(part.coords), fill=colour + (255,), width=1)
                else:
                    (px, py), = xy(part.coords)
                    draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour + (255,))
        if aoi is not None:
            for part in shapely.get_parts(aoi):
                draw.line(xy(part.exterior.coords), fill=(0, 0, 0, 255), width=2)
        with atomic_path(png) as tmp:
            img.save(tmp, format="PNG")
        return png


def stac_item(item_id: str, product: Path, media_type: str, footprint: BaseGeometry, datetime: dt.datetime,
              properties: dict, source: tuple[str, str], self_href: str):
    """A STAC item for a vector product: OpenStreetMap data under the ODbL."""
    import pystac

    from components.common import stac

    item = stac.vector_item(item_id, geometry_json(footprint), _round(list(footprint.bounds)), product.name,
                            media_type, datetime, title="Features", properties=properties)
    item.common_metadata.license = "ODbL-1.0"
    item.common_metadata.providers = [pystac.Provider("OpenStreetMap contributors", roles=[
        pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR], url="https://www.openstreetmap.org/copyright")]
    item.add_link(pystac.Link("license", ODBL, media_type="text/html", title=ATTRIBUTION))
    stac.add_processing(item, lineage="osm-features: objects matched by the class dictionary")
    stac.add_sidecars(item, f"{product.stem}_quicklook.png")
    stac.add_links(item, self_href, [source])
    return item

