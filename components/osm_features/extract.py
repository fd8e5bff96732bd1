"""Streaming extraction of dictionary classes from an OSM file with pyosmium.

One pass of ``osmium.FileProcessor``: node locations are cached for way geometries, closed ways
and multipolygon/boundary relations are assembled into areas by libosmium, and a key filter
(C++) lets through only objects carrying a key some requested class tests. In Python each
object is matched against the classes, its geometry built (``osmium.geom.WKBFactory``) and
tested against the AoI (bounding box first, then the exact polygon).

Every object that matches a class's tags ends up either as a feature or counted as *skipped*
with a reason (a node for a polygon-only class, a relation that is not an area, a ring that
could not be assembled, ...), so that per class ``features + skipped == objects matched``.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import osmium
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from components.common.errors import ServiceError

from .dictionary import Dictionary, FeatureClass, Rule

log = logging.getLogger(__name__)

OSM_TYPES = {"n": "node", "w": "way", "r": "relation"}
AREA_RELATION_TYPES = ("multipolygon", "boundary")  # the relations libosmium assembles
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# Reasons an object that matched a class's tags is not output (kept in run.json).
NODE_NOT_POINT = "node, but the class has no point geometry"
OPEN_WAY_NOT_LINE = "open way, but the class has polygon geometry only"
AREA_NO = "closed way tagged area=no, but the class has polygon geometry only"
RELATION_NOT_AREA = "relation that is not a multipolygon or boundary"
RELATION_NOT_POLYGON = "relation, but the class has no polygon geometry"
NOT_ASSEMBLED = "polygon could not be assembled (broken, unclosed or incomplete rings)"
MISSING_LOCATION = "missing node locations (nodes absent from the extract)"
DEGENERATE_LINE = "degenerate line (fewer than two distinct points)"

# Files that are OSM data but not a current extract.
_CURRENT = "give a current extract (e.g. osmium time-filter {name} -o current.osm.pbf)"
HISTORY_FILE = ("{name} is an OSM history file (several versions of objects, deleted ones included), not a "
                "current extract: " + _CURRENT)
CHANGE_FILE = ("{name} is an OSM change file (osmChange: objects created, modified and deleted), not an "
               "extract: give an extract (.osm.pbf, .osm, .osm.bz2)")
DELETED_OBJECT = ("{name} holds a deleted object ({kind} {id} has visible=false): a history or change file, "
                  "not a current extract: " + _CURRENT)
SECOND_VERSION = ("{name} holds {kind} {id} twice (several versions of one object): a history file, not a "
                  "current extract: " + _CURRENT)
UNSUPPORTED_COMPRESSION = ("{name} uses {method} blob compression, which this reader does not support: "
                           "re-encode with zlib, e.g. osmium cat {name} -o out.osm.pbf "
                           "--output-format pbf,pbf_compression=zlib")


@dataclass
class ExtractInfo:
    """What the file header says: name, bounding box (lon/lat) when present, timestamp."""

    path: Path
    name: str
    bounds: tuple[float, float, float, float] | None
    timestamp: str | None
    generator: str | None


@dataclass
class Feature:
    cls: str
    osm_type: str
    osm_id: int
    geometry: BaseGeometry
    properties: dict

    @property
    def id(self) -> str:
        return f"{self.cls}/{self.osm_type}/{self.osm_id}"


@dataclass
class ExtractStats:
    """Counts per class: features written, objects skipped (per reason), outside the AoI,
    geometries repaired, lines cut by the extract's edge (built from the nodes present); the bounds of every object seen (lon/lat) and the newest timestamp."""

    features: Counter = field(default_factory=Counter)
    skipped: dict = field(default_factory=lambda: defaultdict(Counter))
    outside_aoi: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    partial: Counter = field(default_factory=Counter)
    bounds: list | None = None
    newest: dt.datetime | None = None

    def skip(self, cls: str, reason: str) -> None:
        self.skipped[cls][reason] += 1

    def see(self, minx: float, miny: float, maxx: float, maxy: float) -> None:
        b = self.bounds
        if b is None:
            self.bounds = [minx, miny, maxx, maxy]
        else:
            b[0], b[1], b[2], b[3] = min(b[0], minx), min(b[1], miny), max(b[2], maxx), max(b[3], maxy)

    def as_dict(self, classes: tuple[str, ...]) -> dict:
        return {c: {"features": self.features[c], "skipped": dict(self.skipped.get(c, {})),
                    "outside_aoi": self.outside_aoi[c], "repaired": self.repaired[c],
                    "partial_lines": self.partial[c]} for c in classes}


def read_header(path: Path, name: str | None = None) -> ExtractInfo:
    """The header of an OSM file; ServiceError when the file cannot be read as OSM data."""
    name = name or Path(path).name
    try:
        reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
        try:
            header = reader.header()
            box = header.box()
            bounds = None
            if box.valid():
                bl, tr = box.bottom_left, box.top_right
                bounds = (bl.lon, bl.lat, tr.lon, tr.lat)
            timestamp = header.get("osmosis_replication_timestamp") or header.get("timestamp") or None
            generator = header.get("generator") or None
            versions = header.has_multiple_object_versions
        finally:
            reader.close()
    except osmium.InvalidLocationError as exc:
        raise _invalid_coordinate(name, exc) from None
    except RuntimeError as exc:
        raise _read_failure(name, exc, "cannot be read as OpenStreetMap data (.osm.pbf, .osm, .osm.bz2)"
                            ) from None
    _refuse_versioned(path, name, versions)
    return ExtractInfo(Path(path), name, bounds, timestamp, generator)


def _refuse_versioned(path: Path, name: str, header_flag: bool) -> None:
    """Refuse a history or change file: by content where the format tells (the PBF header's
    required feature ``HistoricalInformation``, which libosmium also sets for an XML
    ``<osmChange>``; the XML root element), else by the name's suffix (.osh, .osc)."""
    suffixes = [s.lower() for s in Path(name).name.split(".")[1:]]
    if (header_flag and _is_osmchange(path)) or "osc" in suffixes:
        raise ServiceError(CHANGE_FILE.format(name=name))
    if header_flag or "osh" in suffixes:
        raise ServiceError(HISTORY_FILE.format(name=name))


def _is_osmchange(path: Path) -> bool:
    """Whether the file (plain, gzip or bzip2 by its magic bytes) is XML with root osmChange."""
    try:
        with open(path, "rb") as f:
            magic = f.read(3)
        opener = gzip.open if magic[:2] == b"\x1f\x8b" else bz2.open if magic == b"BZh" else open
        with opener(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError, ValueError):
        return False
    return re.search(rb"<\s*osmChange[\s>]", head) is not None


class _Matcher:
    """The requested classes indexed by the first key of each of their rules."""

    def __init__(self, classes: list[FeatureClass]):
        self.by_key: dict[str, list[FeatureClass]] = defaultdict(list)
        for cls in classes:
            for key in dict.fromkeys(r.tags[0].key for r in cls.rules):
                self.by_key[key].append(cls)
        self.keys = sorted(self.by_key)

    def matches(self, tags: dict) -> list[tuple[FeatureClass, Rule]]:
        out, seen = [], set()
        for key in tags:
            for cls in self.by_key.get(key, ()):
                if cls.name in seen:
                    continue
                seen.add(cls.name)
                rule = cls.rule_for(tags)
                if rule is not None:
                    out.append((cls, rule))
        return out


def way_reading(cls: FeatureClass, rule: Rule, tags: dict, closed: bool) -> str:
    """How a way is read for a class: "line", "polygon", or a skip reason."""
    geometry = cls.geometry
    if not closed:
        return "line" if "line" in geometry else OPEN_WAY_NOT_LINE
    area = tags.get("area")
    if area == "no":
        return "line" if "line" in geometry else AREA_NO
    preferred = "polygon" if area == "yes" else rule.closed_ways
    if preferred in geometry:
        return preferred
    return "line" if "line" in geometry else "polygon"


def extract(info: ExtractInfo, dictionary: Dictionary, class_names: tuple[str, ...],
            aoi: BaseGeometry | None = None, clip: bool = False,
            stats: ExtractStats | None = None) -> Iterator[Feature]:
    """Features of ``class_names`` in file order (areas after their ways); ``aoi`` is a lon/lat
    polygon. Counts go into ``stats``."""
    stats = stats if stats is not None else ExtractStats()
    classes = [dictionary.classes[n] for n in class_names]
    matcher = _Matcher(classes)
    if aoi is not None:
        shapely.prepare(aoi)
        a_minx, a_miny, a_maxx, a_maxy = aoi.bounds
    factory = osmium.geom.WKBFactory()
    key_filter = osmium.filter.KeyFilter(*matcher.keys)
    processor = (osmium.FileProcessor(str(info.path)).with_locations()
                 .with_areas(osmium.filter.KeyFilter(*matcher.keys)).with_filter(key_filter))
    expected: dict[tuple[str, int], set[str]] = defaultdict(set)  # areas we wait for
    produced: set[tuple[str, int, str]] = set()

    def finish(cls: FeatureClass, kind: str, osm_id: int, geom: BaseGeometry, obj, tags) -> Feature | None:
        minx, miny, maxx, maxy = geom.bounds
        stats.see(minx, miny, maxx, maxy)
        if aoi is not None:
            if maxx < a_minx or minx > a_maxx or maxy < a_miny or miny > a_maxy or not aoi.intersects(geom):
                stats.outside_aoi[cls.name] += 1
                return None
            if clip and not isinstance(geom, Point):
                geom = same_dimension(shapely.intersection(geom, aoi), geom)
                if geom.is_empty:
                    stats.outside_aoi[cls.name] += 1
                    return None
        if not geom.is_valid:
            geom = same_dimension(shapely.make_valid(geom), geom)
            stats.repaired[cls.name] += 1
            if geom.is_empty:
                stats.skip(cls.name, NOT_ASSEMBLED)
                return None
        timestamp = _timestamp(obj, stats)
        props = {"class": cls.name, "category": cls.category, "osm_type": kind, "osm_id": osm_id,
                 "osm_timestamp": timestamp, **dictionary.properties(cls, tags)}
        stats.features[cls.name] += 1
        return Feature(cls.name, kind, osm_id, geom, props)

    last_id = {"n": None, "w": None, "r": None}  # a current extract holds each object once

    try:
        for obj in processor:
            tags = dict(obj.tags)
            found = matcher.matches(tags)
            if not found:
                continue
            kind = obj.type_str()
            if kind in last_id:
                # belt and braces for history and change files whose header lacks the flag
                # (XML): deleted objects and second versions are never features
                if not obj.visible:
                    raise ServiceError(DELETED_OBJECT.format(name=info.name, kind=OSM_TYPES[kind], id=obj.id))
                if obj.id == last_id[kind]:
                    raise ServiceError(SECOND_VERSION.format(name=info.name, kind=OSM_TYPES[kind], id=obj.id))
                last_id[kind] = obj.id
            if obj.is_node():
                loc = obj.location
                point = Point(loc.lon, loc.lat) if loc.valid() else None
                for cls, _ in found:
                    if "point" not in cls.geometry:
                        stats.skip(cls.name, NODE_NOT_POINT)
                    elif point is None:
                        stats.skip(cls.name, MISSING_LOCATION)
                    else:
                        f = finish(cls, "node", obj.id, point, obj, tags)
                        if f is not None:
                            yield f
            elif obj.is_way():
                closed = obj.is_closed()
                line, partial = None, False
                for cls, rule in found:
                    reading = way_reading(cls, rule, tags, closed)
                    if reading == "polygon":
                        expected[("w", obj.id)].add(cls.name)
                        continue
                    if reading != "line":
                        stats.skip(cls.name, reading)
                        continue
                    if line is None:
                        line = _line(factory, obj)
                        if isinstance(line, tuple):  # built from the nodes present only
                            line, partial = line[0], True
                    if isinstance(line, str):
                        stats.skip(cls.name, line)
                        continue
                    f = finish(cls, "way", obj.id, line, obj, tags)
                    if f is not None:
                        stats.partial[cls.name] += partial
                        yield f
            elif obj.is_relation():
                kind = tags.get("type")
                for cls, _ in found:
                    if "polygon" not in cls.geometry:
                        stats.skip(cls.name, RELATION_NOT_POLYGON)
                    elif kind not in AREA_RELATION_TYPES:
                        stats.skip(cls.name, RELATION_NOT_AREA)
                    else:
                        expected[("r", obj.id)].add(cls.name)
            elif obj.is_area():
                key = ("w" if obj.from_way() else "r", obj.orig_id())
                polygon = None
                for cls, rule in found:
                    # the same decision the way (or relation) made from the same tags
                    if "polygon" not in cls.geometry:
                        continue
                    if key[0] == "w" and way_reading(cls, rule, tags, True) != "polygon":
                        continue
                    produced.add((key[0], key[1], cls.name))
                    if polygon is None:
                        polygon = _polygon(factory, obj)
                    if isinstance(polygon, str):
                        stats.skip(cls.name, polygon)
                        continue
                    f = finish(cls, OSM_TYPES[key[0]], key[1], polygon, obj, tags)
                    if f is not None:
                        yield f
    except osmium.InvalidLocationError as exc:
        raise _invalid_coordinate(info.name, exc) from None
    except RuntimeError as exc:
        raise _read_failure(info.name, exc, "cannot be read to the end (truncated or corrupt?)") from None
    for (kind, osm_id), names in expected.items():
        for name in names:
            if (kind, osm_id, name) not in produced:
                stats.skip(name, NOT_ASSEMBLED)


def _line(factory: osmium.geom.WKBFactory, way) -> BaseGeometry | tuple | str:
    """The way as a line; ``(line,)`` when some of its nodes are absent from the extract (a way
    cut by the extract's edge keeps the part inside, as osm2pgsql does); a reason when no line
    can be made."""
    try:
        return shapely.from_wkb(factory.create_linestring(way))
    except osmium.InvalidLocationError:
        pass
    except RuntimeError:
        # libosmium drops repeated (also repeated missing) locations before it checks them:
        # blame the geometry only when every node is present
        if all(node.location.valid() for node in way.nodes):
            return DEGENERATE_LINE
    coords: list[tuple[float, float]] = []
    for node in way.nodes:
        loc = node.location
        if loc.valid() and (not coords or coords[-1] != (loc.lon, loc.lat)):
            coords.append((loc.lon, loc.lat))
    if len(coords) < 2:
        return MISSING_LOCATION
    return (LineString(coords),)


def _polygon(factory: osmium.geom.WKBFactory, area) -> BaseGeometry | str:
    try:
        geom = shapely.from_wkb(factory.create_multipolygon(area))
    except osmium.InvalidLocationError:
        return MISSING_LOCATION
    except RuntimeError:
        return NOT_ASSEMBLED
    if isinstance(geom, MultiPolygon) and len(geom.geoms) == 1:
        geom = geom.geoms[0]
    return geom if not geom.is_empty else NOT_ASSEMBLED


def same_dimension(result: BaseGeometry, like: BaseGeometry) -> BaseGeometry:
    """The parts of ``result`` with the dimension of ``like`` (a clip or repair may add lower
    dimensional bits), as a single or multi geometry."""
    dim = shapely.get_dimensions(like)
    parts = [p for p in shapely.get_parts(result) if shapely.get_dimensions(p) == dim and not p.is_empty]
    if not parts:
        return Polygon() if dim == 2 else LineString() if dim == 1 else Point()
    if len(parts) == 1:
        return parts[0]
    if dim == 2:
        return shapely.union_all(parts) if len(parts) > 1 else parts[0]
    if dim == 1:
        return MultiLineString(parts)
    return shapely.multipoints(parts)


def _timestamp(obj, stats: ExtractStats) -> str | None:
    ts = obj.timestamp
    if ts is None or ts <= _EPOCH:
        return None
    if stats.newest is None or ts > stats.newest:
        stats.newest = ts
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid_coordinate(name: str, exc: Exception) -> ServiceError:
    # the XML parser raises InvalidLocationError (not a RuntimeError) for a malformed lat/lon
    return ServiceError(f"{name} holds an invalid coordinate ({_one_line(exc)}): allowed decimal "
                        "degrees, longitude within [-180, 180] and latitude within [-90, 90]")


def _read_failure(name: str, exc: RuntimeError, what: str) -> ServiceError:
    """One line for a file libosmium stops reading: what it is where the message tells."""
    text = _one_line(exc)
    blob = re.search(r"(\w+) blobs not supported", text)
    if blob:
        return ServiceError(UNSUPPORTED_COMPRESSION.format(name=name, method=blob.group(1)))
    if "twice in input" in text:  # libosmium's check of a way or relation given twice
        return ServiceError(HISTORY_FILE.format(name=name))
    return ServiceError(f"{name} {what}: {text}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
