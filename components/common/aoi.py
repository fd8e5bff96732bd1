"""Area of interest: a WKT polygon in lon/lat or a vector file, as the seeds' ``--AoI``.

``load_aoi(value)`` accepts

* a WKT ``POLYGON`` or ``MULTIPOLYGON`` with lon/lat coordinates in EPSG:4326, as in the seed
  (``POLYGON((-5.25 40.89, ...))``); an EWKT prefix ``SRID=<epsg>;`` selects another CRS;
* a path to a vector file GDAL reads (GeoJSON, ESRI Shapefile, GeoPackage, ...): every feature
  of every spatial layer is read in the file's CRS and the polygons are merged into one
  (multi)polygon. A file without a CRS is only accepted for GeoJSON (EPSG:4326 by RFC 7946).

Non-polygon geometries are rejected; invalid polygons are repaired with ``make_valid`` when that
leaves an area. Every problem is a :class:`ServiceError` with a one-line message.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from .errors import ServiceError

log = logging.getLogger(__name__)

EPSG_4326 = CRS.from_epsg(4326)

# Longest edge kept as a straight segment when a geometry changes CRS: edges are densified to
# this length first, so that a long straight edge in the source CRS is followed as a curve.
DENSIFY_DEGREES = 0.01
DENSIFY_METRES = 1000.0
# Far outside the area a projection is meant for, its formulas fold or diverge (a transverse
# Mercator 90 degrees from its meridian): a lon/lat AoI reaching there (a whole-world polygon) is
# clipped to the target CRS's area of use, widened by this many degrees because a Sentinel-2 tile
# may reach about one tile (1 to 10 degrees of longitude, by latitude) beyond its UTM zone.
AREA_OF_USE_MARGIN_DEGREES = 15.0
# A polygon whose area is below this fraction of its squared perimeter has no area to speak of:
# collinear or coinciding vertices, whose float round-off leaves ~1e-15 (a 1 cm x 100 km strip is 2.5e-8).
MIN_AREA_PER_SQUARED_PERIMETER = 1e-10
# Repairing a self-intersecting polygon costs with the square of its crossings (a 300-point star
# drawn in one ring: 0.6 s; 3000 points: minutes, whatever the limits on the request's length).
# Larger invalid polygons are refused with a hint; valid polygons of any size are taken.
MAX_REPAIR_VERTICES = 500

_WKT_START = re.compile(r"^\s*(SRID\s*=\s*\d+\s*;\s*)?[A-Za-z]+\s*(ZM|Z|M)?\s*(\(|EMPTY\b)",
                        re.IGNORECASE)
_SRID = re.compile(r"^\s*SRID\s*=\s*(\d+)\s*;\s*(.*)$", re.IGNORECASE | re.DOTALL)
_VECTOR_SUFFIXES = (".geojson", ".json", ".shp", ".gpkg", ".zip", ".kml", ".fgb", ".gml",
                    ".sqlite", ".gdb")


@dataclass(frozen=True)
class AoI:
    """A valid polygonal area (Polygon or MultiPolygon, 2D) in ``crs``; ``source`` is the value
    it was loaded from (WKT text or file path), for the run record."""

    geometry: BaseGeometry
    crs: CRS
    source: str
    _projected: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def to_crs(self, crs) -> BaseGeometry:
        """The geometry in another CRS; edges are densified first so long edges stay right."""
        target = _as_crs(crs)
        if target == self.crs:
            return self.geometry
        key = target.to_wkt()
        if key not in self._projected:
            self._projected[key] = _reproject(self.geometry, self.crs, target)
        return self._projected[key]

    def bounds_in(self, crs) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the geometry in ``crs``."""
        return tuple(float(v) for v in self.to_crs(crs).bounds)

    @property
    def wkt_lonlat(self) -> str:
        """The geometry as WKT in lon/lat (EPSG:4326), 8 decimals."""
        return shapely.to_wkt(self.to_crs(EPSG_4326), rounding_precision=8, trim=True)


def load_aoi(value: str) -> AoI:
    """Read an AoI given as WKT (lon/lat, EPSG:4326) or as a path to a vector file."""
    text = "" if value is None else str(value).strip()
    if not text:
        raise ServiceError("AoI is empty: give a WKT polygon or the path of a vector file")
    if os.path.exists(text):
        return _load_file(text)
    if _WKT_START.match(text):
        return _load_wkt(text)
    if os.sep in text or "/" in text or text.lower().endswith(_VECTOR_SUFFIXES):
        raise ServiceError(f"AoI file does not exist: {text}")
    raise ServiceError(f"AoI is neither a readable vector file nor valid WKT: {_short(text)}")


def near_lon(lon, ref_lon: float):
    """Longitudes moved by whole turns to within 180 degrees of ``ref_lon``."""
    return ref_lon + (np.asarray(lon, np.float64) - ref_lon + 180.0) % 360.0 - 180.0


def unwrapped_lon(geometry: BaseGeometry, ref_lon: float) -> BaseGeometry:
    """``geometry`` (lon/lat) with every longitude within 180 degrees of ``ref_lon``: a footprint
    that crosses the antimeridian, written with longitudes of both signs, becomes the small area
    it is (with longitudes beyond 180) instead of one round the globe."""
    return shapely.transform(geometry, lambda xy: np.column_stack([near_lon(xy[:, 0], ref_lon), xy[:, 1]]))


def continuous(footprint_lonlat: BaseGeometry) -> BaseGeometry:
    """A product footprint (smaller than a hemisphere, as every Sentinel scene and tile is) with
    continuous longitudes: one that spans more than 180 degrees as written crosses the
    antimeridian (ESA writes longitudes of both signs), and runs on beyond 180 here."""
    west, _, east, _ = footprint_lonlat.bounds
    if east - west <= 180.0:
        return footprint_lonlat
    return unwrapped_lon(footprint_lonlat, shapely.get_coordinates(footprint_lonlat)[0, 0])


def lonlat_beside(aoi: AoI, footprint_lonlat: BaseGeometry) -> BaseGeometry:
    """The AoI in lon/lat, beside ``footprint_lonlat``: where that footprint's longitudes run on
    beyond 180 (a product across the antimeridian, unwrapped), the AoI's are moved to match."""
    area = aoi.to_crs(EPSG_4326)
    west, _, east, _ = footprint_lonlat.bounds
    return unwrapped_lon(area, (west + east) / 2) if west < -180.0 or east > 180.0 else area


def require_overlap(aoi: AoI, footprint_lonlat: BaseGeometry | str, product_name: str) -> None:
    """ServiceError unless the AoI and a product footprint (lon/lat polygon or its WKT) share an
    area; touching along an edge only does not count."""
    if isinstance(footprint_lonlat, str):
        footprint_lonlat = shapely.from_wkt(footprint_lonlat)
    footprint_lonlat = continuous(footprint_lonlat)
    area = lonlat_beside(aoi, footprint_lonlat)
    footprint = footprint_lonlat if footprint_lonlat.is_valid else shapely.make_valid(footprint_lonlat)
    if area.intersects(footprint) and shapely.intersection(area, footprint).area > 0:
        return
    a = ", ".join(f"{v:.4f}" for v in area.bounds)
    f = ", ".join(f"{v:.4f}" for v in footprint.bounds)
    raise ServiceError(f"AoI does not intersect the footprint of {product_name} "
                       f"(AoI lon/lat bounds {a}; footprint {f})")


def aoi_mask(aoi: AoI, crs, transform, shape, *, window=None) -> np.ndarray:
    """Boolean array of ``shape`` (rows, cols) on the grid ``crs``/``transform``: True for the
    pixels whose centre lies inside the AoI.

    ``window=(row_off, col_off, height, width)`` returns that part of the grid only.
    """
    from affine import Affine
    from rasterio.features import geometry_mask

    if not isinstance(transform, Affine):
        transform = Affine(*tuple(transform)[:6])
    if window is not None:
        row_off, col_off, height, width = (int(v) for v in window)
        t = transform
        transform = Affine(t.a, t.b, t.c + t.a * col_off + t.b * row_off,
                           t.d, t.e, t.f + t.d * col_off + t.e * row_off)
        shape = (height, width)
    shape = (int(shape[0]), int(shape[1]))
    if shape[0] == 0 or shape[1] == 0:
        return np.zeros(shape, dtype=bool)
    geometry = aoi.to_crs(crs)
    west, east = sorted((transform.c, transform.c + transform.a * shape[1]))
    if (west < -180.0 or east > 180.0) and CRS.from_user_input(crs).is_geographic:
        geometry = unwrapped_lon(geometry, (west + east) / 2)  # a grid that runs on beyond the antimeridian
    return geometry_mask([geometry], out_shape=shape, transform=transform,
                         all_touched=False, invert=True)


# --- WKT ---------------------------------------------------------------------------------------

def _load_wkt(text: str) -> AoI:
    crs, wkt = EPSG_4326, text
    m = _SRID.match(text)
    if m:
        try:
            crs = CRS.from_epsg(int(m.group(1)))
        except (CRSError, ValueError):  # ValueError: more digits than int() reads
            raise ServiceError(f"AoI WKT has an unknown SRID {m.group(1)}: {_short(text)}") from None
        wkt = m.group(2)
    try:
        geometry = shapely.from_wkt(wkt)
    except (shapely.errors.ShapelyError, ValueError) as exc:
        raise ServiceError(f"AoI is neither a readable vector file nor valid WKT: {_short(text)} "
                           f"({_one_line(exc)})") from None
    if geometry is None or geometry.is_empty:
        raise ServiceError(f"AoI geometry is empty: {_short(text)}")
    parts = _polygon_parts(geometry)
    if parts is None:
        raise ServiceError(f"AoI WKT must be a POLYGON or MULTIPOLYGON, got "
                           f"{geometry.geom_type.upper()}: {_short(text)}")
    _check_finite(geometry, "AoI WKT")
    geometry = shapely.force_2d(_joined(parts))
    _check_lonlat_range(geometry, crs, "AoI WKT")
    return AoI(repaired(geometry, "AoI WKT"), crs, text)


def _joined(parts: list[BaseGeometry]) -> BaseGeometry:
    """One geometry of the polygons ``parts``: their union when each is valid, else a multipolygon
    for :func:`repaired` (a union of invalid parts fails, or takes as long as their repair)."""
    if len(parts) == 1:
        return parts[0]
    if all(p.is_valid for p in parts):
        return shapely.union_all(parts)
    return MultiPolygon([g for p in parts for g in shapely.get_parts(p)])


# --- vector files ------------------------------------------------------------------------------

def _load_file(path: str) -> AoI:
    import pyogrio
    import pyogrio.raw

    try:
        layers = [(str(name), gtype) for name, gtype in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError and plain OSError/RuntimeError
        raise ServiceError(f"AoI is neither a readable vector file nor valid WKT: {path} "
                           f"({_one_line(exc)})") from None
    spatial = [name for name, gtype in layers if gtype is not None]
    if not spatial:
        raise ServiceError(f"AoI file has no geometry layer: {path}")

    crs0: CRS | None = None
    merged: list[BaseGeometry] = []
    n_features = 0
    for layer in spatial:
        try:
            meta, _, wkb, _ = pyogrio.raw.read(path, layer=layer, columns=[], force_2d=True)
        except Exception as exc:
            raise ServiceError(f"AoI file cannot be read: {path} (layer {layer}: "
                               f"{_one_line(exc)})") from None
        n_features += len(wkb)
        geometries = [g for g in shapely.from_wkb(np.asarray(wkb, dtype=object)) if g is not None
                      and not g.is_empty] if len(wkb) else []
        if not geometries:
            continue
        crs = _file_crs(meta, path, layer)
        polygons: list[BaseGeometry] = []
        for i, g in enumerate(geometries):
            parts = _polygon_parts(g)
            if parts is None:
                raise ServiceError(f"AoI file contains a {g.geom_type} geometry (layer {layer}, "
                                   f"feature {i}); only polygons and multipolygons are accepted: "
                                   f"{path}")
            polygons.extend(repaired(p, f"AoI file {path}", strict=False) for p in parts)
        polygons = [p for p in polygons if p is not None]
        if not polygons:
            continue
        layer_geometry = shapely.union_all(polygons)
        _check_lonlat_range(layer_geometry, crs, f"AoI file {path}")
        if crs0 is None:
            crs0 = crs
        elif crs != crs0:
            layer_geometry = _reproject(layer_geometry, crs, crs0)
        merged.append(layer_geometry)
    if n_features == 0:
        raise ServiceError(f"AoI file has no features: {path}")
    if not merged:
        raise ServiceError(f"AoI file has no polygon with an area (its geometries are empty or "
                           f"invalid and cannot be repaired): {path}")
    geometry = shapely.union_all(merged) if len(merged) > 1 else merged[0]
    return AoI(repaired(geometry, f"AoI file {path}"), crs0, path)


def _file_crs(meta: dict, path: str, layer: str) -> CRS:
    text = meta.get("crs")
    if not text:
        import pyogrio

        try:
            driver = str(pyogrio.read_info(path, layer=layer).get("driver", ""))
        except Exception:
            driver = ""
        if driver.startswith("GeoJSON"):
            return EPSG_4326
        raise ServiceError(f"AoI file has no coordinate reference system (layer {layer}; "
                           f"a Shapefile needs its .prj): {path}")
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise ServiceError(f"AoI file has an unreadable coordinate reference system: {path} "
                           f"({_one_line(exc)})") from None


# --- geometry helpers --------------------------------------------------------------------------

def _polygon_parts(geometry: BaseGeometry) -> list[BaseGeometry] | None:
    """The polygons of a (multi)polygon or of a collection holding only those; None otherwise."""
    if isinstance(geometry, (Polygon, MultiPolygon)):
        return [geometry]
    if geometry.geom_type == "GeometryCollection":
        parts: list[BaseGeometry] = []
        for g in geometry.geoms:
            if g.is_empty:
                continue
            sub = _polygon_parts(g)
            if sub is None:
                return None
            parts.extend(sub)
        return parts or None
    return None


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry (what make_valid may return as a collection)."""
    if isinstance(geometry, (Polygon, MultiPolygon)):
        return geometry
    if geometry.geom_type == "GeometryCollection":
        parts = [_polygonal(g) for g in geometry.geoms]
        parts = [p for p in parts if not p.is_empty]
        return shapely.union_all(parts) if parts else Polygon()
    return Polygon()


def repaired(geometry: BaseGeometry, what: str, strict: bool = True) -> BaseGeometry | None:
    """A valid polygonal geometry; ServiceError (or None when not ``strict``) when impossible."""
    _check_finite(geometry, what)
    if geometry.is_valid and not _has_area(geometry):
        if not strict:
            return None
        raise ServiceError(f"{what} has no area (its vertices are collinear or coincide): "
                           f"{_short(shapely.to_wkt(geometry, rounding_precision=8, trim=True))}")
    if geometry.is_valid:
        return _as_polygonal(geometry)
    reason = shapely.is_valid_reason(geometry) if not geometry.is_valid else "zero area"
    vertices = shapely.get_num_coordinates(geometry)
    if not geometry.is_valid and vertices > MAX_REPAIR_VERTICES:  # even when not strict: no part is lost unsaid
        raise ServiceError(f"{what} geometry is invalid ({reason}) and has {vertices} vertices, more than the "
                           f"{MAX_REPAIR_VERTICES} repaired here: make it valid first (e.g. QGIS's Fix geometries)")
    fixed = valid_polygonal(geometry) if not geometry.is_valid else Polygon()
    if fixed.is_empty or fixed.area <= 0:
        if not strict:
            return None
        raise ServiceError(f"{what} has no area: its geometry is invalid ({reason}) and nothing is left once repaired")
    log.warning("%s geometry was invalid (%s) and was repaired", what, reason)
    return _as_polygonal(fixed)


def valid_polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """The area an invalid polygon's rings outline (GEOS's "structure" repair: shells joined, holes
    cut out; an order of magnitude faster than the default one, which keeps only what the rings
    enclose an odd number of times), as a (multi)polygon; empty when nothing is left."""
    return _polygonal(shapely.make_valid(geometry, method="structure", keep_collapsed=False))


def _check_finite(geometry: BaseGeometry, what: str) -> None:
    if not np.isfinite(shapely.get_coordinates(geometry)).all():
        raise ServiceError(f"{what} has a coordinate that is not a finite number")


def _has_area(geometry: BaseGeometry) -> bool:
    """An area that is more than the round-off of a degenerate (zero-area) ring."""
    return geometry.area > MIN_AREA_PER_SQUARED_PERIMETER * geometry.length ** 2


def _as_polygonal(geometry: BaseGeometry) -> BaseGeometry:
    if isinstance(geometry, (Polygon, MultiPolygon)):
        return geometry
    return _polygonal(geometry)


def _check_lonlat_range(geometry: BaseGeometry, crs: CRS, what: str) -> None:
    if not crs.is_geographic:
        return
    minx, miny, maxx, maxy = geometry.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ServiceError(f"{what} coordinates are not lon/lat in degrees (longitude within "
                           f"[-180, 180], latitude within [-90, 90]): bounds "
                           f"({minx:g}, {miny:g}, {maxx:g}, {maxy:g})")


def _as_crs(crs) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError as exc:
        raise ServiceError(f"unknown coordinate reference system {crs!r}: {_one_line(exc)}") from None


def _reproject(geometry: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    """Densify the edges in ``src`` units, then transform every vertex (lon/lat as x/y). A lon/lat
    geometry is first clipped to where ``dst`` is meant to be used (see :func:`_usable_parts`)."""
    if src.is_geographic:
        step = DENSIFY_DEGREES
    else:
        unit = src.axis_info[0].unit_conversion_factor if src.axis_info else 1.0
        step = DENSIFY_METRES / unit
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    candidates = _usable_parts(geometry, dst) if src.is_geographic else [geometry]
    for part in candidates:
        out = shapely.transform(shapely.segmentize(part, step), fn)
        if np.isfinite(shapely.get_coordinates(out)).all():
            break
    else:
        raise ServiceError(f"AoI cannot be expressed in {dst.name}: it lies outside the area "
                           f"that CRS can represent")
    if not out.is_valid:
        out = valid_polygonal(out)
    return out


def _usable_parts(lonlat: BaseGeometry, crs: CRS) -> list[BaseGeometry]:
    """The versions of a lon/lat geometry to try bringing into ``crs``, best first: clipped to the
    CRS's area of use widened by AREA_OF_USE_MARGIN_DEGREES, then to the area of use itself (where
    the margin reaches a pole of a Mercator, say), then unclipped. A geometry inside the widened
    area, or outside it altogether (the caller then finds no overlap), is kept whole."""
    area = _area_of_use(crs)
    if area is None:
        return [lonlat]
    parts = []
    for margin in (AREA_OF_USE_MARGIN_DEGREES, 0.0):
        domain = _lonlat_box(area, margin)
        if margin and lonlat.within(domain):
            return [lonlat]
        clipped = _polygonal(shapely.intersection(lonlat, domain))
        if not clipped.is_empty and clipped.area > 0:
            parts.append(clipped)
    return parts + [lonlat]


def _area_of_use(crs: CRS) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) in degrees where ``crs`` is meant to be used; a CRS read from a
    raster's WKT often lacks it, its EPSG equivalent has it."""
    area = crs.area_of_use
    if area is None:
        code = crs.to_epsg(min_confidence=70)
        area = CRS.from_epsg(code).area_of_use if code else None
    return None if area is None else (area.west, area.south, area.east, area.north)


def _lonlat_box(area: tuple[float, float, float, float], margin: float) -> BaseGeometry:
    """The lon/lat box of an area of use widened by ``margin`` degrees; one across the antimeridian
    (west > east) is two boxes."""
    west, south, east, north = area
    south, north = max(south - margin, -90.0), min(north + margin, 90.0)
    if west <= east:
        return shapely.box(max(west - margin, -180.0), south, min(east + margin, 180.0), north)
    return shapely.union(shapely.box(max(west - margin, -180.0), south, 180.0, north),
                         shapely.box(-180.0, south, min(east + margin, 180.0), north))


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
