"""The osm-features web service (the seed's way of offering the data: "a web service where the
users can select the desired feature and define the AoI").

The extract is read once at start into an in-memory index (one STR-tree per class, each
feature's GeoJSON text prepared); requests then only query the trees. Endpoints:

* ``GET /``               a map page (plain HTML + JS drawing the GeoJSON on SVG, no CDN)
* ``GET /feature-types``  the classes served, with their counts, groups, limits and the extract
* ``GET /features?types=a,b&aoi=WKT[&clip=true]`` (or ``bbox=minlon,minlat,maxlon,maxlat``)
                          a GeoJSON FeatureCollection (``application/geo+json``)
* ``GET /health``

Refusals carry ``{"detail": "<one line>"}`` naming the parameter and the value: 400 for a bad
request (unknown or repeated parameter, unknown type, bad or missing AoI, AoI outside the
extract), 404 for an unknown path, 405 for a method other than GET, 413 when the AoI is larger
than ``max_aoi_km2``, a parameter longer than ``MAX_PARAMETER_CHARS`` or the answer would hold
more than ``max_features`` features; an unexpected failure is 500 ``{"detail": "internal
error"}`` with the details in the log only.

The AoI's area is that of the region the features are selected from, the polygon as drawn in
lon/lat (straight edges in degrees), on the WGS 84 ellipsoid: see :func:`aoi_area_km2`.
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
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from starlette.exceptions import HTTPException

from components.common import storage
from components.common.aoi import repaired
from components.common.errors import ServiceError

from .dictionary import Dictionary, load_dictionary
from .extract import ExtractInfo, ExtractStats, Feature, extract, read_header, same_dimension
from .writer import feature_json

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("map.html")
FEATURES_PARAMETERS = ("types", "aoi", "bbox", "clip")
# Longest value of one query parameter (a WKT polygon of some 5,000 vertices); longer is a 413.
MAX_PARAMETER_CHARS = 100_000
# What the HTTP server buffers of a request line and headers: room for the longest parameters,
# percent-encoded, so that they get the service's own 413 line.
MAX_REQUEST_HEAD_BYTES = 1024 * 1024
# Connections open at once (idle, slow or busy); beyond them a new one gets 503. A client that
# never finishes its request head holds at most MAX_REQUEST_HEAD_BYTES, so memory stays bounded.
MAX_CONNECTIONS = 64

_WKT_POLYGON = re.compile(r"^\s*(SRID\s*=\s*(?P<srid>\d+)\s*;\s*)?(?P<wkt>(MULTI)?POLYGON\b.*)$",
                          re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_NOT_FINITE = re.compile(r"^\s*[+-]?(nan|inf|infinity)\s*$", re.IGNORECASE)
_GEOD = Geod(ellps="WGS84")
# Gauss-Legendre nodes and weights on [0, 1] for the integral along each edge.
_GL_T, _GL_W = (lambda x, w: ((x + 1) / 2, w / 2))(*np.polynomial.legendre.leggauss(8))


class BadRequest(ServiceError):
    """A refusal of the web service: its HTTP status and one line."""

    status = 400


class TooLarge(BadRequest):
    status = 413


class Refusal(BaseModel):
    """Every refusal: one line naming the parameter and the value."""

    detail: str


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


# --- the AoI -----------------------------------------------------------------------------------

def aoi_area_km2(geometry: BaseGeometry) -> float:
    """Area in km² on the WGS 84 ellipsoid of a valid lon/lat (multi)polygon, taken as drawn in
    lon/lat: its edges are straight lines in degrees (along a parallel where the latitude is
    constant), which is how the features are selected.

    On the ellipsoid, the area between the equator and latitude φ over a longitude span Δλ
    (radians) is ``Δλ·F(φ)`` with ``F(φ) = a²·q(φ)/2`` (q: the authalic function), so a ring
    encloses ``|∮ F(φ) dλ|``, integrated exactly enough along each edge by Gauss-Legendre
    quadrature. Rings are measured one by one without their sign (shell minus holes), so a
    ring's winding does not matter; a box 360° wide, one reaching a pole and the whole world
    (510,065,621.7 km²) come out right, where a geodesic polygon of the same vertices does not.
    """
    total = 0.0
    for polygon in getattr(geometry, "geoms", (geometry,)):
        if polygon.is_empty:
            continue
        total += _ring_area_m2(polygon.exterior.coords)
        total -= sum(_ring_area_m2(r.coords) for r in polygon.interiors)
    return max(total, 0.0) / 1e6


def _ring_area_m2(coords) -> float:
    xy = np.radians(np.asarray(coords, dtype=float)[:, :2])
    lon, lat = xy[:, 0], xy[:, 1]
    dlon = np.diff(lon)
    lat_at = lat[:-1, None] + np.diff(lat)[:, None] * _GL_T[None, :]
    mean_f = (_authalic_f(lat_at) * _GL_W[None, :]).sum(axis=1)
    return abs(float(np.sum(dlon * mean_f)))


def _authalic_f(lat: np.ndarray) -> np.ndarray:
    """``a²·q(φ)/2``: the area between the equator and latitude φ per radian of longitude."""
    e2 = _GEOD.es
    e = np.sqrt(e2)
    s = np.sin(lat)
    q = (1 - e2) * (s / (1 - e2 * s * s) + np.arctanh(e * s) / e)
    return _GEOD.a ** 2 * q / 2


def lonlat_box(west: float, south: float, east: float, north: float) -> BaseGeometry:
    """The box, or when ``west > east`` the box crossing the antimeridian (RFC 7946, 5.2) as
    the two boxes either side of it."""
    if west <= east:
        return box(west, south, east, north)
    parts = [box(w, south, e, north) for w, e in ((west, 180.0), (-180.0, east)) if e > w]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def parse_bbox(text: str) -> BaseGeometry:
    """``minlon,minlat,maxlon,maxlat`` in degrees; ``minlon > maxlon`` crosses the antimeridian."""
    values = text.split(",")
    shown = _short(text)
    if len(values) != 4 or not all(_NUMBER.match(v) or _NOT_FINITE.match(v) for v in values):
        raise BadRequest(f"bbox must be minlon,minlat,maxlon,maxlat (4 numbers, degrees): {shown}")
    west, south, east, north = (float(v) for v in values)
    if not all(np.isfinite(v) for v in (west, south, east, north)):
        raise BadRequest(f"bbox has a value that is not a finite number: {shown}")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise BadRequest(f"bbox longitudes must lie within [-180, 180]: {shown}")
    if not (-90 <= south < north <= 90):
        raise BadRequest(f"bbox latitudes must lie within [-90, 90] with minlat < maxlat: {shown}")
    area = lonlat_box(west, south, east, north)
    if west == east or area.is_empty or area.area <= 0:
        raise BadRequest(f"bbox has no width (minlon = maxlon; minlon > maxlon is a box crossing "
                         f"the antimeridian): {shown}")
    return area


def parse_aoi(text: str) -> BaseGeometry:
    """A WKT POLYGON or MULTIPOLYGON in lon/lat (an ``SRID=4326;`` prefix is allowed), as a
    valid (multi)polygon with an area; invalid ones are repaired as the command line does."""
    shown = _short(text)
    m = _WKT_POLYGON.match(text)
    if not m:
        # only WKT here: a file path in a request must never be opened
        raise BadRequest(f"aoi must be a WKT POLYGON or MULTIPOLYGON in lon/lat: {shown}")
    srid = m.group("srid")
    if srid is not None and (srid.lstrip("0") or "0") != "4326":  # a text: int() refuses 4300 digits and more
        raise BadRequest(f"aoi must be in lon/lat (EPSG:4326): SRID={_short(srid.lstrip('0') or '0', 20)} is "
                         f"not accepted here: {shown}")
    try:
        with np.errstate(invalid="ignore"):  # NaN coordinates are refused below
            geometry = shapely.from_wkt(m.group("wkt"))
    except (shapely.errors.ShapelyError, ValueError) as exc:
        raise BadRequest(f"aoi is not valid WKT: {shown} ({' '.join(str(exc).split())})") from None
    if geometry is None or geometry.is_empty:
        raise BadRequest(f"aoi is empty: {shown}")
    if not isinstance(geometry, (Polygon, MultiPolygon)):
        raise BadRequest(f"aoi must be a WKT POLYGON or MULTIPOLYGON in lon/lat: {shown}")
    geometry = shapely.force_2d(geometry)
    xy = shapely.get_coordinates(geometry)
    if not np.isfinite(xy).all():
        raise BadRequest(f"aoi has a coordinate that is not a finite number: {shown}")
    minx, miny = xy.min(axis=0)
    maxx, maxy = xy.max(axis=0)
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise BadRequest(f"aoi coordinates must be lon/lat in degrees (longitude within [-180, 180], "
                         f"latitude within [-90, 90]): bounds ({minx:g}, {miny:g}, {maxx:g}, "
                         f"{maxy:g}) of {shown}")
    try:  # as the command line repairs it (and refuses what is too costly to repair)
        return repaired(geometry, "aoi")
    except ServiceError as exc:
        raise BadRequest(f"{exc}: {shown}") from None


def _short(value: str, limit: int = 120) -> str:
    """A request value for a one-line message: quoted, on one line, at most ``limit`` long."""
    text = " ".join(str(value).split()) if str(value).strip() else str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _one_line(text, limit: int = 2000) -> str:
    line = " ".join(str(text).split()) or "error"
    return line if len(line) <= limit else line[:limit] + "..."


# --- the application ---------------------------------------------------------------------------

def create_app(index: FeatureIndex, limits: Limits) -> FastAPI:
    from components import __version__

    app = FastAPI(title="osm-features", version=__version__,
                  description="Human features from OpenStreetMap by class and area of interest. "
                  "Data © OpenStreetMap contributors, ODbL 1.0. Every refusal is "
                  '`{"detail": "<one line>"}` naming the parameter and the value.')
    dictionary = index.dictionary
    extent = _extent(index)
    page = PAGE.read_text(encoding="utf-8")
    refusals = {400: {"model": Refusal, "description": "Bad request"},
                413: {"model": Refusal, "description": "AoI, parameter or answer too large"}}

    @app.exception_handler(BadRequest)
    async def refused(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc.one_line())}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_line(exc)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_refusal(request: Request, exc: HTTPException) -> JSONResponse:
        path = request.url.path
        if exc.status_code == 404:
            detail = f"no such path: {_short(path)} (see /docs)"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "GET")
            detail = f"method {request.method} is not allowed on {_short(path)}: allowed {allowed}"
        else:
            detail = _one_line(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error answering %s %s: %s: %s", request.method, request.url.path,
                  type(exc).__name__, _one_line(exc, 300))
        return JSONResponse({"detail": "internal error"}, status_code=500)

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

    @app.get("/features", response_class=Response,
             responses={200: {"content": {"application/geo+json": {}},
                              "description": "GeoJSON FeatureCollection"}, **refusals})
    def features(request: Request,
                 types: str | None = Query(None, description="Comma-separated classes or groups"),
                 aoi: str | None = Query(None, description="WKT POLYGON or MULTIPOLYGON, lon/lat"),
                 bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat in degrees; "
                                          "minlon > maxlon crosses the antimeridian"),
                 clip: bool = Query(False, description="Clip lines and polygons to the AoI")) -> Response:
        t0 = time.perf_counter()
        _check_parameters(request)
        if not types:
            raise BadRequest("types is required: comma-separated feature classes or groups "
                             "(see /feature-types)")
        classes = _served(types)
        name, area = _area(aoi, bbox)
        km2 = aoi_area_km2(area)
        if not km2 <= limits.max_aoi_km2:
            raise TooLarge(f"{name} of {km2:,.1f} km² is larger than the limit of "
                           f"{limits.max_aoi_km2:,.1f} km²: use a smaller area")
        if extent is not None and not (area.intersects(extent) and area.intersection(extent).area > 0):
            raise BadRequest(f"{name} does not intersect the extract {index.info.name} "
                             f"(extract lon/lat bounds {', '.join(f'{v:.4f}' for v in extent.bounds)})")
        hits = index.query(classes, area)
        total = sum(len(v) for v in hits.values())
        if total > limits.max_features:
            raise TooLarge(f"the answer would hold {total} features, more than the limit "
                           f"of {limits.max_features}: use a smaller AoI or fewer types")
        parts = []
        for c in classes:
            if clip:
                prepared = area
                shapely.prepare(prepared)
                for i in hits[c]:
                    f = index.features[c][i]
                    # a line touching the AoI's edge clips to a point too: only the line's parts are kept
                    g = f.geometry if f.geometry.geom_type == "Point" or prepared.contains(f.geometry) \
                        else same_dimension(shapely.intersection(f.geometry, area), f.geometry)
                    if not g.is_empty:
                        parts.append(feature_json(f, g))
            else:
                texts = index.texts[c]
                parts.extend(texts[i] for i in hits[c])
        body = '{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}"
        log.info("features %s: %d in %.3f s", ",".join(classes), len(parts), time.perf_counter() - t0)
        return Response(body, media_type="application/geo+json")

    def _served(types: str) -> tuple[str, ...]:
        try:
            names = dictionary.expand(types.split(","), parameter="types")
        except ServiceError as e:
            raise BadRequest(e.one_line()) from None
        absent = [c for c in names if c not in index.classes]
        if absent:
            raise BadRequest(f"types not served here: {', '.join(absent)} (served: "
                             f"{', '.join(index.classes)})")
        return names

    def _area(aoi: str | None, bbox: str | None) -> tuple[str, BaseGeometry]:
        if aoi and bbox:
            raise BadRequest("give either aoi (WKT) or bbox, not both")
        if bbox:
            return "bbox", parse_bbox(bbox)
        if not aoi:
            raise BadRequest("aoi is required: a WKT POLYGON or MULTIPOLYGON in lon/lat "
                             "(or give bbox=minlon,minlat,maxlon,maxlat)")
        return "aoi", parse_aoi(aoi)

    return app


def _check_parameters(request: Request) -> None:
    """Refuse unknown, repeated and overlong query parameters of /features."""
    seen: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        seen.setdefault(key, []).append(value)
    for key, values in seen.items():
        if key not in FEATURES_PARAMETERS:
            raise BadRequest(f"unknown parameter {_short(key, 40)} (value {_short(values[0], 40)}): "
                             f"/features takes {', '.join(FEATURES_PARAMETERS)}")
        if len(values) > 1:
            raise BadRequest(f"parameter '{key}' is given {len(values)} times "
                             f"({', '.join(_short(v, 40) for v in values[:3])}): give it once")
        if len(values[0]) > MAX_PARAMETER_CHARS:
            raise TooLarge(f"parameter '{key}' is {len(values[0])} characters long, more than the "
                           f"limit of {MAX_PARAMETER_CHARS}: use a simpler polygon")


def _validation_line(exc: RequestValidationError) -> str:
    """One line for FastAPI's validation errors: the first one, naming parameter and value."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    e = errors[0]
    loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "path", "header", "body")]
    name = ".".join(loc) or "request"
    if e.get("type") == "missing":
        return f"parameter '{name}' is required"
    value = e.get("input")
    msg = " ".join(str(e.get("msg", "invalid")).split())
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _one_line(f"invalid value {_short(value, 80)} for parameter '{name}': {msg}{more}")


def _extent(index: FeatureIndex) -> BaseGeometry | None:
    bounds = index.info.bounds or index.stats.bounds
    if not bounds:
        return None
    west, south, east, north = bounds
    return lonlat_box(west, south, east, north)


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
    config = uvicorn.Config(app, host=host, port=sock.getsockname()[1], log_level="info",
                            h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
                            limit_concurrency=MAX_CONNECTIONS)
    log.info("serving %s on http://%s:%d (max AoI %.0f km², max %d features)", index.info.name, host,
             sock.getsockname()[1], limits.max_aoi_km2, limits.max_features)
    uvicorn.Server(config).run(sockets=[sock])
