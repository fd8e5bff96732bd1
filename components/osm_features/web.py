"""The osm-features web service (the seed's way of offering the data: "a web service where the
users can select the desired feature and define the AoI").

The extract is read once at start into an in-memory index (one STR-tree per class, each
feature's GeoJSON text prepared); requests then only query the trees. Endpoints:

* ``GET /``               a map page (plain HTML + JS drawing the GeoJSON on SVG, no CDN)
* ``GET /feature-types``  the classes served, with their counts, groups, limits and the extract
* ``GET /features?types=a,b&aoi=WKT[&clip=true]`` (or ``bbox=minlon,minlat,maxlon,maxlat``)
                          a GeoJSON FeatureCollection (``application/geo+json``)
* ``GET /health``

Refusals carry ``{"detail": "<one line>"}``: 400 for a bad request (unknown type, bad or
missing AoI, AoI outside the extract), 413 when the AoI is larger than ``max_aoi_km2`` or the
answer would hold more than ``max_features`` features.
"""

from __future__ import annotations

import logging
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import box

from components.common import storage
from components.common.aoi import EPSG_4326, load_aoi
from components.common.errors import ServiceError

from .dictionary import Dictionary, load_dictionary
from .extract import ExtractInfo, ExtractStats, Feature, extract, read_header
from .writer import feature_json

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("map.html")
_WKT_POLYGON = re.compile(r"^\s*(SRID\s*=\s*\d+\s*;\s*)?(MULTI)?POLYGON\b", re.IGNORECASE)
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Limits:
    max_aoi_km2: float
    max_features: int


class FeatureIndex:
    """Every feature of the served classes, per class, with an STR-tree over their geometries."""

    def __init__(self, info: ExtractInfo, dictionary: Dictionary, classes: tuple[str, ...],
                 features: dict[str, list[Feature]], stats: ExtractStats):
        self.info, self.dictionary, self.classes, self.stats = info, dictionary, classes, stats
        self.features = features
        self.texts = {c: [feature_json(f) for f in fs] for c, fs in features.items()}
        self.trees = {c: shapely.STRtree([f.geometry for f in fs]) for c, fs in features.items()}

    @classmethod
    def build(cls, info: ExtractInfo, dictionary: Dictionary, classes: tuple[str, ...]) -> "FeatureIndex":
        stats = ExtractStats()
        features: dict[str, list[Feature]] = {c: [] for c in classes}
        for f in extract(info, dictionary, classes, stats=stats):
            features[f.cls].append(f)
        return cls(info, dictionary, classes, features, stats)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.features.values())

    def query(self, classes: tuple[str, ...], area) -> dict[str, np.ndarray]:
        """Indices of the features of each class that intersect ``area``, in file order."""
        return {c: np.sort(self.trees[c].query(area, predicate="intersects")) for c in classes}


def create_app(index: FeatureIndex, limits: Limits):
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, Response

    from components import __version__

    app = FastAPI(title="osm-features", version=__version__,
                  description="Human features from OpenStreetMap by class and area of interest. "
                  "Data © OpenStreetMap contributors, ODbL 1.0.")
    dictionary = index.dictionary
    extent = box(*index.info.bounds) if index.info.bounds else (
        box(*index.stats.bounds) if index.stats.bounds else None)
    page = PAGE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def map_page() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "features": index.count}

    @app.get("/feature-types")
    def feature_types() -> dict:
        return {
            "extract": {"name": index.info.name, "bounds": index.info.bounds,
                        "data_bounds": index.stats.bounds, "timestamp": index.info.timestamp,
                        "attribution": "© OpenStreetMap contributors, ODbL 1.0"},
            "feature_types": [{**dictionary.classes[c].describe(), "count": len(index.features[c])}
                              for c in index.classes],
            "groups": {g: [c for c in v if c in index.classes] for g, v in dictionary.groups.items()
                       if any(c in index.classes for c in v)},
            "limits": {"max_aoi_km2": limits.max_aoi_km2, "max_features": limits.max_features},
        }

    @app.get("/features")
    def features(types: str | None = Query(None, description="Comma-separated classes or groups"),
                 aoi: str | None = Query(None, description="WKT POLYGON or MULTIPOLYGON, lon/lat"),
                 bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat"),
                 clip: bool = Query(False, description="Clip lines and polygons to the AoI")) -> Response:
        t0 = time.perf_counter()
        try:
            if not types:
                raise ServiceError("types is required: comma-separated feature classes or groups "
                                   "(see /feature-types)")
            classes = _served(types)
            area = _area(aoi, bbox)
        except ServiceError as e:
            raise HTTPException(400, e.one_line()) from None
        km2 = abs(_GEOD.geometry_area_perimeter(area)[0]) / 1e6
        if km2 > limits.max_aoi_km2:
            raise HTTPException(413, f"AoI of {km2:,.1f} km² is larger than the limit of "
                                f"{limits.max_aoi_km2:,.1f} km²: use a smaller area")
        if extent is not None and not (area.intersects(extent) and area.intersection(extent).area > 0):
            raise HTTPException(400, f"AoI does not intersect the extract {index.info.name} "
                                f"(extract lon/lat bounds {', '.join(f'{v:.4f}' for v in extent.bounds)})")
        hits = index.query(classes, area)
        total = sum(len(v) for v in hits.values())
        if total > limits.max_features:
            raise HTTPException(413, f"the answer would hold {total} features, more than the limit "
                                f"of {limits.max_features}: use a smaller AoI or fewer types")
        parts = []
        for c in classes:
            if clip:
                prepared = area
                shapely.prepare(prepared)
                for i in hits[c]:
                    f = index.features[c][i]
                    g = f.geometry if f.geometry.geom_type == "Point" or prepared.contains(f.geometry) \
                        else shapely.intersection(f.geometry, area)
                    if not g.is_empty:
                        parts.append(feature_json(f, g))
            else:
                texts = index.texts[c]
                parts.extend(texts[i] for i in hits[c])
        body = '{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}"
        log.info("features %s: %d in %.3f s", ",".join(classes), len(parts), time.perf_counter() - t0)
        return Response(body, media_type="application/geo+json")

    def _served(types: str) -> tuple[str, ...]:
        names = dictionary.expand(types.split(","), parameter="types")
        absent = [c for c in names if c not in index.classes]
        if absent:
            raise ServiceError(f"types not served here: {', '.join(absent)} (served: "
                               f"{', '.join(index.classes)})")
        return names

    def _area(aoi: str | None, bbox: str | None):
        if aoi and bbox:
            raise ServiceError("give either aoi (WKT) or bbox, not both")
        if bbox:
            try:
                minx, miny, maxx, maxy = (float(v) for v in bbox.split(","))
            except ValueError:
                raise ServiceError(f"bbox must be minlon,minlat,maxlon,maxlat: {bbox[:80]!r}") from None
            if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
                raise ServiceError(f"bbox is not an area in lon/lat degrees: {bbox[:80]!r}")
            return box(minx, miny, maxx, maxy)
        if not aoi:
            raise ServiceError("aoi is required: a WKT POLYGON or MULTIPOLYGON in lon/lat "
                               "(or give bbox=minlon,minlat,maxlon,maxlat)")
        if not _WKT_POLYGON.match(aoi):
            # only WKT here: a file path in a request must never be opened
            raise ServiceError(f"aoi must be a WKT POLYGON or MULTIPOLYGON in lon/lat: {aoi[:80]!r}")
        return load_aoi(aoi).to_crs(EPSG_4326)

    return app


def load_index(input_uri: str, features: list[str], dictionary_path: str | None) -> FeatureIndex:
    dictionary = load_dictionary(dictionary_path)
    classes = dictionary.expand(features)
    name = Path(str(input_uri).rstrip("/")).name
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="osm-serve-") as work:
        path = storage.fetch_input(input_uri, Path(work))
        if path.is_dir():
            raise ServiceError(f"input is a folder, not an OSM file: {input_uri}")
        info = read_header(path, name)
        index = FeatureIndex.build(info, dictionary, classes)
    log.info("indexed %d features of %d classes from %s in %.1f s", index.count, len(classes), name,
             time.perf_counter() - t0)
    return index


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(input_uri: str, host: str, port: int, features: list[str], dictionary_path: str | None,
          limits: Limits) -> None:
    """Index the extract, then serve until interrupted. Bad inputs and a busy port are
    ServiceErrors raised before anything listens."""
    import uvicorn

    index = load_index(input_uri, features, dictionary_path)
    sock = _bind(host, port)
    app = create_app(index, limits)
    config = uvicorn.Config(app, host=host, port=sock.getsockname()[1], log_level="info")
    log.info("serving %s on http://%s:%d (max AoI %.0f km², max %d features)", index.info.name, host,
             sock.getsockname()[1], limits.max_aoi_km2, limits.max_features)
    uvicorn.Server(config).run(sockets=[sock])
