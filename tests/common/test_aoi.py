"""AoI from WKT and from real vector files (GeoJSON, Shapefile, GeoPackage) written here."""

from __future__ import annotations

import math

import numpy as np
import pyogrio.raw
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.transform import xy
from shapely.geometry import MultiPolygon, Point, Polygon, box

from components.common.aoi import AoI, aoi_mask, load_aoi, require_overlap
from components.common.errors import ServiceError

SEED_WKT = "POLYGON((-5.25 40.89, -5.0 40.89, -5.0 41.0, -5.25 41.0, -5.25 40.89))"
UTM29N = CRS.from_epsg(32629)
UTM30N = CRS.from_epsg(32630)


def write_vector(path, geometries, crs, driver, geometry_type=None):
    wkb = np.array([shapely.to_wkb(g) for g in geometries], dtype=object)
    if geometry_type is None:
        geometry_type = geometries[0].geom_type if geometries else "Polygon"
    pyogrio.raw.write(str(path), wkb, [], [], driver=driver, geometry_type=geometry_type, crs=crs)
    return str(path)


# --- WKT ---------------------------------------------------------------------------------------

def test_wkt_polygon_in_lonlat():
    aoi = load_aoi(SEED_WKT)
    assert isinstance(aoi, AoI)
    assert aoi.crs == CRS.from_epsg(4326)
    assert aoi.source == SEED_WKT
    assert aoi.geometry.equals(box(-5.25, 40.89, -5.0, 41.0))
    assert shapely.from_wkt(aoi.wkt_lonlat).equals(aoi.geometry)
    assert aoi.bounds_in("EPSG:4326") == pytest.approx((-5.25, 40.89, -5.0, 41.0))


def test_wkt_to_utm_matches_pyproj_and_follows_long_edges():
    aoi = load_aoi(SEED_WKT)
    utm = aoi.to_crs(UTM30N)
    tr = Transformer.from_crs(4326, 32630, always_xy=True)
    ring = np.asarray(utm.exterior.coords)
    for lon, lat in box(-5.25, 40.89, -5.0, 41.0).exterior.coords:
        golden = np.array(tr.transform(lon, lat))
        assert np.min(np.hypot(*(ring - golden).T)) < 1e-6  # the corners are vertices
    # the northern edge (a parallel) is a curve in UTM: its midpoint lies on the boundary
    mid = Point(tr.transform(-5.125, 41.0))
    assert utm.exterior.distance(mid) < 0.05
    chord = Polygon([tr.transform(x, y) for x, y in box(-5.25, 40.89, -5.0, 41.0).exterior.coords])
    assert chord.exterior.distance(mid) > 1.0  # a plain corner transform would be metres off
    # west of the central meridian (-3), meridians lean east and parallels rise to the west
    golden = (tr.transform(-5.25, 40.89)[0], tr.transform(-5.0, 40.89)[1],
              tr.transform(-5.0, 41.0)[0], tr.transform(-5.25, 41.0)[1])
    assert aoi.bounds_in(UTM30N) == pytest.approx(golden, abs=1e-6)


def test_wkt_multipolygon_and_srid_prefix():
    aoi = load_aoi("MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)), ((2 0, 3 0, 3 1, 2 0)))")
    assert isinstance(aoi.geometry, MultiPolygon) and aoi.geometry.area == pytest.approx(1.5)
    utm = load_aoi("SRID=32629;POLYGON((500000 5860000, 501000 5860000, 501000 5861000, "
                   "500000 5861000, 500000 5860000))")
    assert utm.crs == UTM29N and utm.geometry.area == pytest.approx(1e6)


def test_self_intersecting_wkt_is_repaired():
    aoi = load_aoi("POLYGON((0 0, 2 2, 2 0, 0 2, 0 0))")  # a bow-tie
    assert aoi.geometry.is_valid and aoi.geometry.area == pytest.approx(2.0)


# a ring of 600 vertices drawn as one self-crossing star: its repair would cost minutes
_STAR_600 = "(" + ",".join(f"{math.cos(i * 2 * math.pi * 299 / 600):.6f} {math.sin(i * 2 * math.pi * 299 / 600):.6f}"
                           for i in [*range(600), 0]) + ")"


@pytest.mark.parametrize("value, message", [
    ("POLYGON((0 0, 1", r"^AoI is neither a readable vector file nor valid WKT: POLYGON\(\(0 0, 1 "),
    ("somewhere", r"^AoI is neither a readable vector file nor valid WKT: somewhere$"),
    ("POINT(1 2)", r"^AoI WKT must be a POLYGON or MULTIPOLYGON, got POINT: POINT\(1 2\)$"),
    ("LINESTRING(0 0, 1 1)", r"got LINESTRING"),
    ("POLYGON EMPTY", r"^AoI geometry is empty: POLYGON EMPTY$"),
    ("POLYGON((0 0, 1 1, 2 2, 0 0))", r"^AoI WKT has no area: its geometry is invalid \(Self-intersection"),
    # valid for GEOS, but its area is float round-off (~1e-18 square degrees): three points on a line
    ("POLYGON((-8.999 53.245,-8.995 53.247,-8.991 53.249,-8.999 53.245))",
     r"^AoI WKT has no area \(its vertices are collinear or coincide\): POLYGON \(\(-8.999 53.245, "),
    ("POLYGON((500000 5000000, 500100 5000000, 500100 5000100, 500000 5000000))",
     r"^AoI WKT coordinates are not lon/lat in degrees .*bounds \(500000, 5e\+06"),
    ("POLYGON((170 80, 190 80, 190 85, 170 80))", r"longitude within \[-180, 180\]"),
    ("", r"^AoI is empty"),
    ("/nowhere/aoi.gpkg", r"^AoI file does not exist: /nowhere/aoi.gpkg$"),
    # what a request may carry: NaN inside a closed ring, infinity in projected metres, 5000 digits
    ("POLYGON((26.93 60.52,nan 60.52,27 60.6,26.93 60.52))", r"^AoI WKT has a coordinate that is not a finite number$"),
    ("SRID=3857;POLYGON((0 0,inf 0,1 1,0 0))", r"^AoI WKT has a coordinate that is not a finite number$"),
    (f"SRID={'9' * 5000};POLYGON((0 0,1 0,1 1,0 0))", r"^AoI WKT has an unknown SRID 9999"),
    (f"POLYGON({_STAR_600})", r"^AoI WKT geometry is invalid \(Self-intersection.*\) and has 601 vertices, more than "
                              r"the 500 repaired here: make it valid first"),
])
def test_wkt_errors(value, message):
    with pytest.raises(ServiceError, match=message) as err:
        load_aoi(value)
    assert "\n" not in str(err.value)


# --- vector files ------------------------------------------------------------------------------

def test_geojson_features_are_merged(tmp_path):
    path = write_vector(tmp_path / "aoi.geojson", [box(-9.0, 53.0, -8.9, 53.1),
                                                    box(-8.95, 53.05, -8.8, 53.1)],
                        "EPSG:4326", "GeoJSON")
    aoi = load_aoi(path)
    assert aoi.source == path and aoi.crs.to_epsg() == 4326
    assert isinstance(aoi.geometry, Polygon)
    assert aoi.geometry.area == pytest.approx(0.01 + 0.0075 - 0.0025)


def test_shapefile_in_utm_and_its_lonlat(tmp_path):
    square = box(500000, 5860000, 502000, 5861000)
    path = write_vector(tmp_path / "aoi.shp", [square], "EPSG:32629", "ESRI Shapefile")
    aoi = load_aoi(path)
    assert aoi.crs == UTM29N and aoi.geometry.equals(square)
    lonlat = aoi.to_crs("EPSG:4326")
    ring = np.asarray(lonlat.exterior.coords)
    tr = Transformer.from_crs(32629, 4326, always_xy=True)
    for x, y in square.exterior.coords:
        assert np.min(np.hypot(*(ring - np.array(tr.transform(x, y))).T)) < 1e-9
    assert lonlat.bounds[0] == pytest.approx(tr.transform(500000, 5860000)[0])
    back = load_aoi(aoi.wkt_lonlat).to_crs(UTM29N)
    assert shapely.hausdorff_distance(back, square) < 0.05


def test_geopackage_multipolygon_union_in_utm(tmp_path):
    a = MultiPolygon([box(400000, 4500000, 401000, 4501000), box(403000, 4500000, 404000, 4501000)])
    b = box(400500, 4500500, 401500, 4501500)
    path = write_vector(tmp_path / "aoi.gpkg", [a, b], "EPSG:32630", "GPKG", "MultiPolygon")
    aoi = load_aoi(path)
    assert aoi.crs == UTM30N
    assert isinstance(aoi.geometry, MultiPolygon) and len(aoi.geometry.geoms) == 2
    assert aoi.geometry.area == pytest.approx(2e6 + 1e6 - 0.25e6)


def test_geopackage_layers_in_different_crs_are_merged(tmp_path):
    path = str(tmp_path / "layers.gpkg")
    utm_box = box(500000, 5860000, 501000, 5861000)
    lonlat_box = box(-9.0, 52.9, -8.99, 52.91)  # about 1.1 km north of utm_box
    write_vector(path, [utm_box], "EPSG:32629", "GPKG")
    pyogrio.raw.write(path, np.array([shapely.to_wkb(lonlat_box)], dtype=object), [], [],
                      layer="second", driver="GPKG", geometry_type="Polygon", crs="EPSG:4326")
    aoi = load_aoi(path)
    assert aoi.crs == UTM29N and isinstance(aoi.geometry, MultiPolygon)
    tr = Transformer.from_crs(4326, 32629, always_xy=True)
    second = Polygon([tr.transform(x, y) for x, y in lonlat_box.exterior.coords])
    assert aoi.geometry.area == pytest.approx(1e6 + second.area, rel=1e-6)


def test_file_errors(tmp_path):
    point = write_vector(tmp_path / "point.geojson", [Point(1, 2)], "EPSG:4326", "GeoJSON")
    with pytest.raises(ServiceError, match=r"^AoI file contains a Point geometry \(layer point, "
                                           r"feature 0\); only polygons .*point.geojson$"):
        load_aoi(point)
    empty = write_vector(tmp_path / "empty.gpkg", [], "EPSG:32629", "GPKG", "Polygon")
    with pytest.raises(ServiceError, match=r"^AoI file has no features: .*empty.gpkg$"):
        load_aoi(empty)
    with pytest.warns(UserWarning, match="crs"):
        no_prj = write_vector(tmp_path / "noprj.shp", [box(0, 0, 1, 1)], None, "ESRI Shapefile")
    with pytest.raises(ServiceError, match=r"^AoI file has no coordinate reference system .*noprj.shp$"):
        load_aoi(no_prj)
    garbage = tmp_path / "garbage.geojson"
    garbage.write_text("{ this is not json")
    with pytest.raises(ServiceError, match=r"^AoI is neither a readable vector file nor valid WKT: "
                                           r".*garbage.geojson \("):
        load_aoi(str(garbage))
    with pytest.raises(ServiceError, match=r"^AoI file does not exist: .*missing.shp$"):
        load_aoi(str(tmp_path / "missing.shp"))


def test_file_of_polygons_without_area(tmp_path):
    line_like = Polygon([(-8.999, 53.245), (-8.995, 53.247), (-8.991, 53.249)])
    path = write_vector(tmp_path / "flat.geojson", [line_like], "EPSG:4326", "GeoJSON")
    with pytest.raises(ServiceError, match=r"^AoI file has no polygon with an area .*flat.geojson$"):
        load_aoi(path)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_geojson_without_crs_member_is_lonlat(tmp_path):
    path = tmp_path / "plain.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                    '"properties": {}, "geometry": {"type": "Polygon", "coordinates": '
                    '[[[10, 50], [11, 50], [11, 51], [10, 50]]]}}]}')
    aoi = load_aoi(str(path))
    assert aoi.crs.to_epsg() == 4326 and aoi.geometry.area == pytest.approx(0.5)


# --- AoIs larger than a projection's area of use -----------------------------------------------

TILE_T29UNU = box(499980, 5890200, 609780, 6000000)  # the tile's 109.8 km square in UTM 29N


@pytest.mark.parametrize("wkt", ["POLYGON((-180 -90,180 -90,180 90,-180 90,-180 -90))",
                                 "POLYGON((-179 -89,179 -89,179 89,-179 89,-179 -89))"], ids=["world", "near-world"])
@pytest.mark.parametrize("crs", [UTM29N, CRS.from_wkt(UTM29N.to_wkt(version="WKT1_GDAL"))],
                         ids=["EPSG", "WKT of a raster"])  # a raster's WKT carries no area of use
def test_world_aoi_in_utm_covers_the_tile(wkt, crs):
    utm = load_aoi(wkt).to_crs(crs)
    assert utm.is_valid and utm.contains(TILE_T29UNU)
    # a tile at the zone's edge reaches ~1 tile beyond it: the AoI reaches further
    assert utm.contains(box(*Transformer.from_crs(4326, 32629, always_xy=True).transform_bounds(-13.5, 70, -4.5, 80)))


def test_world_aoi_in_a_crs_of_the_whole_world():
    mercator = load_aoi("POLYGON((-180 -90,180 -90,180 90,-180 90,-180 -90))").to_crs("EPSG:3857")
    assert mercator.contains(box(-2e7, -2e7, 2e7, 2e7))


# --- footprint overlap -------------------------------------------------------------------------

def test_require_overlap():
    aoi = load_aoi(SEED_WKT)
    require_overlap(aoi, box(-5.5, 40.5, -5.1, 41.5), "S2A_MSIL2A_X")
    with pytest.raises(ServiceError, match=r"^AoI does not intersect the footprint of S2A_MSIL2A_X"):
        require_overlap(aoi, box(10, 40, 11, 41), "S2A_MSIL2A_X")
    with pytest.raises(ServiceError, match="footprint of S2B_MSIL2A_Y"):  # touching is not enough
        require_overlap(aoi, box(-5.0, 40.0, -4.0, 42.0), "S2B_MSIL2A_Y")


# --- pixel mask --------------------------------------------------------------------------------

GRID = Affine(10, 0, 500000, 0, -10, 5000100)  # 10 x 10 pixels of 10 m


def test_mask_counts_pixel_centres_inside():
    # x in [500020, 500060] holds the centres 500025..500055 (4 columns, cols 2..5);
    # y in [5000020, 5000070] holds 5000065..5000025 (5 rows, rows 3..7)
    aoi = load_aoi("SRID=32629;POLYGON((500020 5000020, 500060 5000020, 500060 5000070, "
                   "500020 5000070, 500020 5000020))")
    mask = aoi_mask(aoi, UTM29N, GRID, (10, 10))
    assert mask.dtype == bool and mask.sum() == 20
    assert mask[3:8, 2:6].all()
    # a right triangle with legs of 6.5 pixels in the top-left corner: centre (i+.5, j+.5) is
    # inside when i + j <= 5, 21 pixels (no centre lies on the diagonal)
    tri = load_aoi("SRID=32629;POLYGON((500000 5000100, 500065 5000100, 500000 5000035, "
                   "500000 5000100))")
    tmask = aoi_mask(tri, "EPSG:32629", GRID, (10, 10))
    assert tmask.sum() == 21
    assert [int(n) for n in tmask.sum(axis=1)] == [6, 5, 4, 3, 2, 1, 0, 0, 0, 0]
    np.testing.assert_array_equal(aoi_mask(tri, UTM29N, GRID, (10, 10), window=(1, 2, 4, 5)),
                                  tmask[1:5, 2:7])


def test_lonlat_aoi_on_a_utm_grid():
    aoi = load_aoi("POLYGON((-9.02 52.95, -8.95 52.96, -8.96 53.02, -9.01 53.01, -9.02 52.95))")
    grid = Affine(100, 0, 497000, 0, -100, 5873000)
    mask = aoi_mask(aoi, UTM29N, grid, (100, 100))
    rows, cols = np.mgrid[0:100, 0:100]
    x, y = xy(grid, rows.ravel(), cols.ravel())
    lon, lat = Transformer.from_crs(32629, 4326, always_xy=True).transform(x, y)
    inside = shapely.contains_xy(aoi.geometry, lon, lat).reshape(100, 100)
    assert 1000 < inside.sum() < 9000
    np.testing.assert_array_equal(mask, inside)
