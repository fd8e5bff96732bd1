"""Bad inputs of the osm-features web service: every refusal has the documented status and the
body ``{"detail": "<one line>"}`` naming the parameter and the value; the AoI size limit holds
for every way of writing a large area (whole-world boxes, antimeridian-crossing boxes, odd
windings, self-intersections); /openapi.json and /docs answer.

The table runs against the real command (``osm-features serve`` on the Liechtenstein extract,
the ``server`` fixture of test_web); the antimeridian and internal-error cases run in process on
a small index built here."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, Polygon, box

from components.osm_features.dictionary import load_dictionary
from components.osm_features.extract import ExtractInfo, ExtractStats, Feature

from .conftest import VADUZ_WKT
from .test_web import MAX_AOI_KM2, server  # noqa: F401  (the real server, a fixture)

# Surface of the WGS 84 ellipsoid, km².
EARTH_KM2 = 510_065_621.7
LIMIT = f"larger than the limit of {MAX_AOI_KM2:,.1f} km²"


def _ring(*xy: float) -> str:
    pts = [f"{xy[i]:g} {xy[i + 1]:g}" for i in range(0, len(xy), 2)]
    return "(" + ",".join(pts + [pts[0]]) + ")"


# A 1°×1° box near Vaduz: counter-clockwise, clockwise, and both in one MULTIPOLYGON (signed
# areas that cancel), and a bow-tie of the same size.
CCW = _ring(9, 47, 10, 47, 10, 48, 9, 48)
CW = _ring(9, 47, 9, 48, 10, 48, 10, 47)
FAR_CW = _ring(20, 47, 20, 48, 21, 48, 21, 47)
BOWTIE = _ring(9, 47, 10, 48, 10, 47, 9, 48)



def _star(points: int) -> str:
    """A ring of ``points`` vertices drawn as one self-crossing star near Vaduz: its crossings grow
    with the square of its vertices, and so does the cost of repairing it."""
    import math

    turn = 2 * math.pi * (points // 2 - 1) / points
    return _ring(*[v for i in range(points) for v in (9.52 + 0.01 * math.cos(i * turn),
                                                      47.14 + 0.01 * math.sin(i * turn))])

# (id, method, path, query parameters, status, fragments the detail must contain)
CASES = [
    # query parameters of any type, repeated or unknown ones
    ("clip-not-bool", "GET", "/features", {"types": "airport", "aoi": VADUZ_WKT, "clip": "maybe"}, 400,
     ["'clip'", "'maybe'"]),
    ("clip-empty", "GET", "/features", {"types": "airport", "aoi": VADUZ_WKT, "clip": ""}, 400, ["'clip'"]),
    ("types-missing", "GET", "/features", {"aoi": VADUZ_WKT}, 400, ["types is required"]),
    ("types-unknown", "GET", "/features", {"types": "spaceport", "aoi": VADUZ_WKT}, 400,
     ["'spaceport'", "'types'"]),
    ("types-only-commas", "GET", "/features", {"types": ",,", "aoi": VADUZ_WKT}, 400, ["'types'"]),
    ("types-repeated", "GET", "/features?types=airport&types=school&bbox=9.5,47.1,9.6,47.2", None, 400,
     ["'types'", "2 times", "'school'"]),
    ("unknown-parameter", "GET", "/features", {"types": "airport", "aoi": VADUZ_WKT, "colour": "red"}, 400,
     ["unknown parameter 'colour'", "'red'"]),
    ("unknown-parameter-case", "GET", "/features", {"types": "airport", "AOI": VADUZ_WKT}, 400,
     ["unknown parameter 'AOI'"]),
    # the AoI: missing, both, not WKT, not lon/lat, not finite, degenerate
    ("aoi-missing", "GET", "/features", {"types": "airport"}, 400, ["aoi is required", "bbox"]),
    ("aoi-and-bbox", "GET", "/features", {"types": "airport", "aoi": VADUZ_WKT, "bbox": "9.5,47.1,9.6,47.2"}, 400,
     ["either aoi (WKT) or bbox"]),
    ("aoi-file-path", "GET", "/features", {"types": "airport", "aoi": "/etc/hostname"}, 400,
     ["aoi must be a WKT POLYGON or MULTIPOLYGON", "'/etc/hostname'"]),
    ("aoi-geojson", "GET", "/features", {"types": "airport", "aoi": '{"type":"Polygon","coordinates":[]}'}, 400,
     ["aoi must be a WKT POLYGON", "Polygon"]),
    ("aoi-point", "GET", "/features", {"types": "airport", "aoi": "POINT(9.5 47.1)"}, 400,
     ["aoi must be a WKT POLYGON", "POINT(9.5 47.1)"]),
    ("aoi-truncated", "GET", "/features", {"types": "airport", "aoi": "POLYGON((9.5 47.1, 9.6"}, 400,
     ["aoi is not valid WKT", "POLYGON((9.5 47.1, 9.6"]),
    ("aoi-empty", "GET", "/features", {"types": "airport", "aoi": "POLYGON EMPTY"}, 400,
     ["aoi is empty", "POLYGON EMPTY"]),
    ("aoi-nan", "GET", "/features", {"types": "airport", "aoi": "POLYGON((9.5 47.1,nan 47.1,9.6 47.2,9.5 47.1))"},
     400, ["aoi", "not a finite number", "nan 47.1"]),
    ("aoi-inf", "GET", "/features", {"types": "airport", "aoi": "POLYGON((9.5 47.1,inf 47.1,9.6 47.2,9.5 47.1))"},
     400, ["aoi", "not a finite number", "inf 47.1"]),
    ("aoi-latitude-beyond-90", "GET", "/features", {"types": "airport", "aoi": "POLYGON((9 47,10 47,10 95,9 47))"},
     400, ["aoi", "latitude within [-90, 90]", "10 95"]),
    ("aoi-longitude-beyond-180", "GET", "/features", {"types": "airport", "aoi": "POLYGON((179 0,181 0,181 1,179 0))"},
     400, ["aoi", "longitude within [-180, 180]", "181 0"]),
    ("aoi-projected-srid", "GET", "/features",
     {"types": "airport", "aoi": "SRID=3857;POLYGON((0 0,1e9 0,1e9 1e9,0 1e9,0 0))"}, 400,
     ["aoi", "SRID=3857", "EPSG:4326"]),
    ("aoi-degenerate", "GET", "/features", {"types": "airport", "aoi": "POLYGON((9.5 47.1,9.6 47.1,9.7 47.1,9.5 47.1))"},
     400, ["aoi has no area", "9.6 47.1"]),
    ("aoi-srid-of-5000-digits", "GET", "/features", {"types": "airport", "aoi": f"SRID={'9' * 5000};{VADUZ_WKT}"},
     400, ["aoi must be in lon/lat (EPSG:4326)", "is not accepted here"]),
    ("aoi-star-too-costly-to-repair", "GET", "/features", {"types": "airport", "aoi": f"POLYGON({_star(600)})"},
     400, ["aoi geometry is invalid (Self-intersection", "has 601 vertices, more than the 500 repaired here"]),
    ("aoi-outside-extract", "GET", "/features", {"types": "airport", "aoi": "POLYGON((10 45,10.1 45,10.1 45.1,10 45.1,10 45))"},
     400, ["aoi does not intersect the extract liechtenstein-2013-08-03.osm.pbf"]),
    # bbox: format, non-finite, out of range, degenerate or inverted
    ("bbox-three-numbers", "GET", "/features", {"types": "airport", "bbox": "9.6,47.2,9.5"}, 400,
     ["bbox must be minlon,minlat,maxlon,maxlat", "'9.6,47.2,9.5'"]),
    ("bbox-words", "GET", "/features", {"types": "airport", "bbox": "west,south,east,north"}, 400,
     ["bbox must be", "'west,south,east,north'"]),
    ("bbox-empty-item", "GET", "/features", {"types": "airport", "bbox": "9.5,,47.1,9.6"}, 400,
     ["bbox must be", "'9.5,,47.1,9.6'"]),
    ("bbox-underscore-number", "GET", "/features", {"types": "airport", "bbox": "9_5,47.1,9.6,47.2"}, 400,
     ["bbox must be", "'9_5,47.1,9.6,47.2'"]),
    ("bbox-nan", "GET", "/features", {"types": "airport", "bbox": "nan,47.1,9.6,47.2"}, 400,
     ["bbox", "not a finite number", "'nan,47.1,9.6,47.2'"]),
    ("bbox-inf", "GET", "/features", {"types": "airport", "bbox": "9.5,47.1,inf,47.2"}, 400,
     ["bbox", "not a finite number", "'9.5,47.1,inf,47.2'"]),
    ("bbox-overflow", "GET", "/features", {"types": "airport", "bbox": "9.5,47.1,1e400,47.2"}, 400,
     ["bbox", "not a finite number"]),
    ("bbox-latitude-beyond-90", "GET", "/features", {"types": "airport", "bbox": "9.5,-95,9.6,47.2"}, 400,
     ["bbox", "latitude", "'9.5,-95,9.6,47.2'"]),
    ("bbox-longitude-beyond-180", "GET", "/features", {"types": "airport", "bbox": "170,10,190,20"}, 400,
     ["bbox", "longitude", "'170,10,190,20'"]),
    ("bbox-south-above-north", "GET", "/features", {"types": "airport", "bbox": "9.5,47.2,9.6,47.1"}, 400,
     ["bbox", "minlat < maxlat", "'9.5,47.2,9.6,47.1'"]),
    ("bbox-no-height", "GET", "/features", {"types": "airport", "bbox": "9.5,47.1,9.6,47.1"}, 400,
     ["bbox", "minlat < maxlat", "'9.5,47.1,9.6,47.1'"]),
    ("bbox-no-width", "GET", "/features", {"types": "airport", "bbox": "9.5,47.1,9.5,47.2"}, 400,
     ["bbox has no width", "'9.5,47.1,9.5,47.2'"]),
    ("bbox-no-width-at-antimeridian", "GET", "/features", {"types": "airport", "bbox": "180,47.1,-180,47.2"}, 400,
     ["bbox has no width", "'180,47.1,-180,47.2'"]),
    # too large: every way of writing a large area
    ("bbox-whole-world", "GET", "/features", {"types": "airport", "bbox": "-180,-90,180,90"}, 413,
     ["bbox", f"{EARTH_KM2:,.1f} km²", LIMIT]),
    ("bbox-360-band", "GET", "/features", {"types": "airport", "bbox": "-180,47,180,47.3"}, 413, ["bbox", LIMIT]),
    ("bbox-antimeridian-large", "GET", "/features", {"types": "airport", "bbox": "170,-10,-170,10"}, 413,
     ["bbox", LIMIT]),
    ("bbox-antimeridian-nearly-world", "GET", "/features", {"types": "airport", "bbox": "9.6,47.1,9.5,47.2"}, 413,
     ["bbox", LIMIT]),
    ("aoi-whole-world", "GET", "/features", {"types": "airport", "aoi": "POLYGON((-180 -90,180 -90,180 90,-180 90,-180 -90))"},
     413, ["aoi", f"{EARTH_KM2:,.1f} km²", LIMIT]),
    ("aoi-360-band", "GET", "/features", {"types": "airport", "aoi": "POLYGON((-180 47,180 47,180 47.3,-180 47.3,-180 47))"},
     413, ["aoi", LIMIT]),
    ("aoi-clockwise", "GET", "/features", {"types": "airport", "aoi": f"POLYGON({CW})"}, 413, ["aoi", LIMIT]),
    ("aoi-windings-that-cancel", "GET", "/features", {"types": "airport", "aoi": f"MULTIPOLYGON(({CCW}),({FAR_CW}))"},
     413, ["aoi", LIMIT]),
    ("aoi-bowtie", "GET", "/features", {"types": "airport", "aoi": f"POLYGON({BOWTIE})"}, 413, ["aoi", LIMIT]),
    # paths and methods
    ("unknown-path", "GET", "/featurez", None, 404, ["/featurez"]),
    ("post-features", "POST", "/features", None, 405, ["POST", "/features", "GET"]),
    ("delete-feature-types", "DELETE", "/feature-types", None, 405, ["DELETE", "/feature-types"]),
]


def _check_refusal(r, status: int, fragments: list[str]) -> str:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body = r.json()
    assert isinstance(body, dict) and list(body) == ["detail"], body
    detail = body["detail"]
    assert isinstance(detail, str) and detail.strip() == detail and detail
    assert "\n" not in detail and "\r" not in detail, detail
    assert "Traceback" not in detail
    for fragment in fragments:
        assert fragment in detail, (fragment, detail)
    return detail


def test_at_least_twenty_cases():
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("method, path, params, status, fragments", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_refusal(server, method, path, params, status, fragments):  # noqa: F811
    _check_refusal(server.request(method, path, params=params), status, fragments)


def test_large_areas_report_their_true_size(server):  # noqa: F811
    """The 413 line states the area: the whole world is the ellipsoid's surface, a box crossing
    the antimeridian as large as the same box on the other side of Greenwich."""
    cases = {"-180,-90,180,90": EARTH_KM2,
             "170,-10,-170,10": None, "-10,-10,10,10": None}
    found = {}
    for bbox in cases:
        r = server.get("/features", params={"types": "airport", "bbox": bbox})
        detail = _check_refusal(r, 413, ["bbox"])
        found[bbox] = float(detail.split(" km²")[0].split()[-1].replace(",", ""))
    assert found["-180,-90,180,90"] == pytest.approx(EARTH_KM2, rel=1e-9)
    assert found["170,-10,-170,10"] == pytest.approx(found["-10,-10,10,10"], rel=1e-9)


def test_small_antimeridian_box_is_an_area(server):  # noqa: F811
    """A small box crossing the antimeridian is accepted as an area (it does not fail as
    inverted or as too large): here it is refused only because Liechtenstein is elsewhere."""
    r = server.get("/features", params={"types": "airport", "bbox": "179.9,-16.2,-179.9,-16.0"})
    _check_refusal(r, 400, ["bbox does not intersect the extract liechtenstein-2013-08-03.osm.pbf"])


def test_legitimate_requests_still_answer(server):  # noqa: F811
    for params in ({"types": "airport", "aoi": VADUZ_WKT, "clip": "true"},
                   {"types": "airport", "aoi": "SRID=4326;" + VADUZ_WKT},
                   {"types": "airport", "aoi": f"POLYGON({_ring(9.50, 47.12, 9.50, 47.20, 9.56, 47.20, 9.56, 47.12)})"},
                   {"types": "airport", "bbox": "9.50,47.12,9.56,47.20", "clip": "false"}):
        r = server.get("/features", params=params)
        assert r.status_code == 200, (params, r.text[:300])
        assert r.json()["type"] == "FeatureCollection"


def test_a_small_self_crossing_aoi_is_still_repaired(server):  # noqa: F811
    r = server.get("/features", params={"types": "airport", "aoi": f"POLYGON({_star(50)})"})
    assert r.status_code == 200, r.text[:300]


def test_a_clipped_line_that_also_touches_the_aoi_stays_a_line(server):  # noqa: F811
    """A road crossing one part of the AoI and touching another at its last vertex clips to a line
    and a point: the answer keeps the line (it answered 500, or a Point for a line only touching)."""
    roads = server.get("/features", params={"types": "roads", "bbox": "9.52,47.13,9.53,47.14"}).json()
    road = next(f for f in roads["features"] if f["geometry"]["type"] == "LineString"
                and len(f["geometry"]["coordinates"]) >= 3)
    (x0, y0), (x1, y1) = road["geometry"]["coordinates"][:2]
    (xp, yp), (xe, ye) = road["geometry"]["coordinates"][-2:]
    mx, my, d = (x0 + x1) / 2, (y0 + y1) / 2, 1e-5
    dx, dy = xe - xp, ye - yp  # beyond the last vertex, a triangle with its tip on it
    crossed = f"(({mx - d!r} {my - d!r},{mx + d!r} {my - d!r},{mx + d!r} {my + d!r},{mx - d!r} {my + d!r},{mx - d!r} {my - d!r}))"
    touched = (f"(({xe!r} {ye!r},{xe + dx - dy / 2!r} {ye + dy + dx / 2!r},{xe + dx + dy / 2!r} {ye + dy - dx / 2!r},"
               f"{xe!r} {ye!r}))")
    for aoi, kinds in ((f"MULTIPOLYGON({crossed},{touched})", {"LineString"}), (f"POLYGON{touched}", set())):
        r = server.get("/features", params={"types": "roads", "aoi": aoi, "clip": "true"})
        assert r.status_code == 200, r.text[:300]
        mine = [f for f in r.json()["features"] if f["id"] == road["id"]]
        assert {f["geometry"]["type"] for f in mine} == kinds, mine


def test_openapi_and_docs(server):  # noqa: F811
    r = server.get("/openapi.json")
    assert r.status_code == 200, r.text[:300]
    spec = r.json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "osm-features"
    features = spec["paths"]["/features"]["get"]
    assert {p["name"] for p in features["parameters"]} == {"types", "aoi", "bbox", "clip"}
    assert {"200", "400", "413"} <= set(features["responses"])
    # every reference points at a schema that is there
    refs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"], ref
    r = server.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text


def test_long_request_line_gets_the_documented_refusal(server):  # noqa: F811
    """A request line of some 360 kB (far beyond h11's default buffer of 16 KiB) reaches the
    service and gets the documented 413 line, not the HTTP server's plain-text 400."""
    base = urlsplit(str(server.base_url))
    aoi = "POLYGON((" + ",".join(f"9.5{i:07d} 47.1" for i in range(20_000)) + "))"
    with socket.create_connection((base.hostname, base.port), timeout=10) as s:
        s.sendall(b"GET /features?types=airport&aoi=" + aoi.replace(" ", "%20").encode() +
                  b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 413"), head[:200]
    detail = json.loads(body)["detail"]
    assert detail.startswith("parameter 'aoi' is ") and "more than the limit of 100000" in detail, detail


# --- in process: an index around the antimeridian, the area rule, internal errors ----------

def _app(features: dict[str, list[Feature]], bounds=None, max_aoi_km2: float = 500.0):
    from components.osm_features.web import FeatureIndex, Limits, create_app

    d = load_dictionary()
    for c in d.names:
        features.setdefault(c, [])
    info = ExtractInfo(Path("fiji.osm.pbf"), "fiji.osm.pbf", bounds, None, None)
    index = FeatureIndex(info, d, tuple(d.names), features, ExtractStats())
    return create_app(index, Limits(max_aoi_km2, 1000)), index


@pytest.fixture(scope="module")
def fiji():
    from fastapi.testclient import TestClient

    features = {"airport": [Feature("airport", "node", i, Point(x, -16.1), {"name": n}) for i, (x, n) in
                            enumerate([(179.95, "east of 180"), (-179.95, "west of 180"), (0.0, "Greenwich")], 1)]}
    app, _ = _app(features, bounds=(179.0, -17.0, -179.0, -15.0))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("params", [
    {"bbox": "179.9,-16.2,-179.9,-16.0"},
    {"aoi": "MULTIPOLYGON(((179.9 -16.2,180 -16.2,180 -16,179.9 -16,179.9 -16.2)),"
            "((-180 -16.2,-179.9 -16.2,-179.9 -16,-180 -16,-180 -16.2)))"},
])
def test_small_antimeridian_aoi_is_served(fiji, params):
    r = fiji.get("/features", params={"types": "airport", **params})
    assert r.status_code == 200, r.text
    assert sorted(f["properties"]["name"] for f in r.json()["features"]) == ["east of 180", "west of 180"]


def test_wkt_across_the_antimeridian_is_taken_as_drawn(fiji):
    """WKT is planar lon/lat: a ring from 179.9 to -179.9 spans 359.8° of longitude, and its
    area says so."""
    r = fiji.get("/features", params={"types": "airport",
                                      "aoi": "POLYGON((179.9 -16.2,-179.9 -16.2,-179.9 -16,179.9 -16,179.9 -16.2))"})
    _check_refusal(r, 413, ["aoi", LIMIT])


def test_internal_error_is_one_line_and_logged(caplog):
    from fastapi.testclient import TestClient

    app, index = _app({"airport": [Feature("airport", "node", 1, Point(0, 0), {})]})

    def broken(*args, **kwargs):
        raise RuntimeError("index exploded\nwith a second line")

    index.query = broken
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/features", params={"types": "airport", "bbox": "-0.1,-0.1,0.1,0.1"})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error"}
    assert "index exploded" not in r.text and "Traceback" not in r.text
    assert any("internal error" in rec.getMessage() and "/features" in rec.getMessage() for rec in caplog.records)


def _geod_km2(geometry, step: float = 0.01) -> float:
    """Reference: geodesic area of the geometry with its edges cut into short pieces (each ring
    apart, so that the winding cannot matter)."""
    geod = Geod(ellps="WGS84")
    total = 0.0
    for poly in getattr(geometry, "geoms", [geometry]):
        dense = shapely.segmentize(poly, step)
        total += abs(geod.polygon_area_perimeter(*dense.exterior.xy)[0])
        total -= sum(abs(geod.polygon_area_perimeter(*r.xy)[0]) for r in dense.interiors)
    return total / 1e6


@pytest.mark.parametrize("geometry", [
    box(9.50, 47.12, 9.56, 47.20),
    box(9.50, 47.12, 9.56, 47.20).reverse(),
    Polygon([(9, 47), (10, 47.5), (9.5, 48)]),
    Polygon([(0, 0), (1, 0), (1, 1), (0, 1)], [[(0.2, 0.2), (0.3, 0.2), (0.3, 0.3)]]),  # hole wound like the shell
    MultiPolygon([box(9, 47, 10, 48), box(20, 47, 21, 48).reverse()]),
    box(-10, -60, 30, 10),
    box(-180, -1, 180, 1),
])
def test_area_matches_the_geodesic_area(geometry):
    from components.osm_features.web import aoi_area_km2

    assert aoi_area_km2(geometry) == pytest.approx(_geod_km2(geometry), rel=1e-6)


def test_area_of_the_whole_world_and_of_hemispheres():
    from components.osm_features.web import aoi_area_km2

    assert aoi_area_km2(box(-180, -90, 180, 90)) == pytest.approx(EARTH_KM2, rel=1e-9)
    assert aoi_area_km2(box(-180, 0, 180, 90)) == pytest.approx(EARTH_KM2 / 2, rel=1e-9)
    assert aoi_area_km2(box(0, -90, 180, 90)) == pytest.approx(EARTH_KM2 / 2, rel=1e-9)
    # polar caps: rings along a parallel with the pole as an edge
    assert aoi_area_km2(box(-180, 80, 180, 90)) == pytest.approx(aoi_area_km2(box(-180, -90, 180, -80)), rel=1e-12)
    assert aoi_area_km2(box(-180, 80, 180, 90)) == pytest.approx(_geod_km2(box(-180, 80, 180, 89.99)), rel=1e-3)


def test_clients_that_never_finish_are_bounded(server):  # noqa: F811
    """Connections holding an unfinished request head take at most MAX_CONNECTIONS places; the
    next connection is refused with 503 (not queued while memory grows), and once they go the
    service answers again."""
    from components.osm_features.web import MAX_CONNECTIONS

    base = urlsplit(str(server.base_url))
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            s = socket.create_connection((base.hostname, base.port), timeout=10)
            s.sendall(b"GET /health?x=" + b"a" * 1000)  # no end of line: the head never ends
            held.append(s)
        with socket.create_connection((base.hostname, base.port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 503"), "the next connection is refused"
    finally:
        for s in held:
            s.close()
    for _ in range(50):  # the server notices the closed connections
        if server.get("/health").status_code == 200:
            break
    assert server.get("/health").status_code == 200
