"""Feature counts per class against an independent count made with osmium's own tag filters,
and the validity of every geometry written (OGC validity, RFC 7946 GeoJSON)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import jsonschema
import pytest
import shapely
from shapely.geometry import shape

from components.osm_features.dictionary import load_dictionary
from components.osm_features.extract import ExtractStats, extract, read_header
from tests.stac_schema import ROOT as STAC_SCHEMAS
from tests.stac_schema import validate_item

from .conftest import VADUZ_WKT
from .golden import golden

GEOMETRY_TYPES = {"point": {"Point"}, "line": {"LineString", "MultiLineString"},
                  "polygon": {"Polygon", "MultiPolygon"}}


@pytest.fixture(scope="module")
def dictionary():
    return load_dictionary()


@pytest.fixture(scope="module")
def golden_liechtenstein(liechtenstein, dictionary):
    return golden(liechtenstein, dictionary)


def _ids_by_class(collection: dict) -> dict[str, set[tuple[str, int]]]:
    out: dict[str, set] = defaultdict(set)
    for f in collection["features"]:
        p = f["properties"]
        out[p["class"]].add((p["osm_type"], p["osm_id"]))
    return out


def test_counts_match_osmium_tag_filters(liechtenstein_all, golden_liechtenstein, dictionary):
    """Per class: every feature written is an object osmium's filters match, and features plus
    the objects skipped (each with a reason in run.json) are exactly the objects matched."""
    ids = _ids_by_class(liechtenstein_all.geojson())
    for name in dictionary.classes:
        expected = golden_liechtenstein[name]
        written = ids.get(name, set())
        stats = liechtenstein_all.classes[name]
        assert written <= expected, f"{name}: features not matched by the tag filter: {written - expected}"
        assert stats["features"] == len(written)
        assert len(written) + sum(stats["skipped"].values()) == len(expected), (name, stats, len(expected))
        assert stats["outside_aoi"] == 0


def test_classes_present_in_liechtenstein_yield_features(liechtenstein_all, golden_liechtenstein):
    present = {name for name, objs in golden_liechtenstein.items() if objs}
    written = {name for name, s in liechtenstein_all.classes.items() if s["features"]}
    assert len(present) >= 25
    # every class with matching objects has features; the skipped ones are few and explained
    assert written == present
    for name in present:
        s = liechtenstein_all.classes[name]
        assert sum(s["skipped"].values()) <= max(2, 0.01 * len(golden_liechtenstein[name])), (name, s)


def test_every_geometry_is_valid_rfc7946(liechtenstein_all, dictionary):
    collection = liechtenstein_all.geojson()
    assert collection["type"] == "FeatureCollection" and "crs" not in collection
    feature_schema = json.loads((STAC_SCHEMAS / "geojson" / "Feature.json").read_text())
    validator = jsonschema.Draft7Validator(feature_schema)
    minx, miny, maxx, maxy = collection["bbox"]
    ids = Counter()
    schema_checked = set()
    for f in collection["features"]:
        ids[f["id"]] += 1
        p = f["properties"]
        cls = dictionary.classes[p["class"]]
        kind = (p["class"], f["geometry"]["type"])
        if kind not in schema_checked:  # the JSON schema on one feature of each kind (it is slow)
            validator.validate(f)
            schema_checked.add(kind)
        geom = shape(f["geometry"])
        assert geom.is_valid and not geom.is_empty, (f["id"], shapely.is_valid_reason(geom))
        allowed = set().union(*(GEOMETRY_TYPES[g] for g in cls.geometry))
        assert geom.geom_type in allowed, (f["id"], geom.geom_type)
        if p["osm_type"] == "node":
            assert geom.geom_type == "Point"
        if p["osm_type"] == "relation":
            assert geom.geom_type in GEOMETRY_TYPES["polygon"]
        for polygon in getattr(geom, "geoms", [geom]) if "Polygon" in geom.geom_type else []:
            assert polygon.exterior.is_ccw, f["id"]  # RFC 7946: exterior counter-clockwise
            assert not any(ring.is_ccw for ring in polygon.interiors), f["id"]
        coords = shapely.get_coordinates(geom)
        assert (coords[:, 0] >= minx).all() and (coords[:, 0] <= maxx).all()
        assert (coords[:, 1] >= miny).all() and (coords[:, 1] <= maxy).all()
        assert all(round(float(c), 7) == float(c) for c in coords.ravel()[:20])
        assert set(dictionary.attribute_names(cls)) == set(p)
    assert max(ids.values()) == 1, "feature ids must be unique"


def test_attributes_are_mapped_with_their_types(liechtenstein_all):
    by_class = defaultdict(list)
    for f in liechtenstein_all.geojson()["features"]:
        by_class[f["properties"]["class"]].append(f["properties"])
    hospital = by_class["hospital"][0]
    assert hospital["name"] == "Liechtensteinisches Landesspital" and hospital["emergency"] is True
    line = next(p for p in by_class["power_line"] if p["voltage_v"] is not None)
    assert line["voltage_v"] == 220000 and line["cables"] == 6 and line["operator"] == "Swissgrid"
    roads = by_class["road_primary"]
    assert {p["road_class"] for p in roads} <= {"primary", "primary_link"}
    assert all(isinstance(p["lanes"], int) for p in roads if p["lanes"] is not None)
    assert all(isinstance(p["osm_timestamp"], str) and p["osm_timestamp"].endswith("Z") for p in roads)


def test_stac_item_and_run_record(liechtenstein_all):
    item = liechtenstein_all.stac
    validate_item(item)
    assert item["properties"]["datetime"] == "2013-08-03T19:00:02Z"
    assert item["properties"]["license"] == "ODbL-1.0"
    assert item["assets"]["data"]["href"] == liechtenstein_all.product.name
    assert item["assets"]["data"]["type"] == "application/geo+json"
    counts = item["properties"]["osm_classes"]
    assert counts == {k: v["features"] for k, v in liechtenstein_all.classes.items()}
    assert liechtenstein_all.record["inputs"][0]["bounds"] == pytest.approx([9.471078, 47.04774, 9.636217, 47.27128])
    from PIL import Image

    with Image.open(liechtenstein_all.quicklook) as img:
        assert img.format == "PNG" and max(img.size) == 1024


def test_aoi_prefilter_equals_post_filter(liechtenstein_all, liechtenstein_vaduz):
    """Streaming with the AoI gives exactly the features of the full extraction that intersect
    the AoI (tested here with shapely on the written product)."""
    aoi = shapely.from_wkt(VADUZ_WKT)
    full = liechtenstein_all.geojson()["features"]
    expected = {f["id"] for f in full if shape(f["geometry"]).intersects(aoi)}
    got = {f["id"] for f in liechtenstein_vaduz.geojson()["features"]}
    assert got == expected
    assert 500 < len(got) < len(full)
    stats = liechtenstein_vaduz.classes
    assert sum(s["outside_aoi"] for s in stats.values()) + len(got) == len(full)


def test_helsinki_extract_cut_at_its_edge(helsinki, dictionary):
    """The Helsinki extract has ways whose nodes lie outside it: lines keep the part inside,
    rings that cannot close are skipped with a reason, and the counts still add up."""
    reference = golden(helsinki, dictionary)
    stats = ExtractStats()
    features = list(extract(read_header(helsinki), dictionary, dictionary.names, stats=stats))
    by_class = Counter(f.cls for f in features)
    for name in dictionary.names:
        assert by_class[name] + sum(stats.skipped[name].values()) == len(reference[name]), name
        assert all(f.geometry.is_valid for f in features if f.cls == name)
    assert by_class["building"] > 2000
    assert sum(stats.partial.values()) > 0
    assert stats.skipped["building"]["polygon could not be assembled (broken, unclosed or incomplete rings)"] > 0
