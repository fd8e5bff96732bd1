"""Land/sea mask on real coastline (Clare / Galway Bay, west of Ireland, UTM 29N) and on DEMs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import rowcol, xy

from components.common.errors import InvalidParameter, ServiceError
from components.common.landmask import LandSeaMask

UTM29N = "EPSG:32629"
# 120 km x 100 km at 250 m: Atlantic in the west, Aran Islands, Galway Bay, Clare and the
# Shannon estuary; its east edge is the west edge of the Sentinel-2 tile T29UNU (x = 499980).
GRID_TRANSFORM = Affine(250, 0, 380000, 0, -250, 5900000)
GRID_SHAPE = (400, 480)

# Points checked against global_land_mask.globe.is_land, with the distance to the nearest
# cell of the other class measured on a 250 m lattice.
OFFSHORE = (385000, 5880000)      # Atlantic, no land within 15 km
ARAN_SOUND = (440000, 5890000)    # sea, land (Aran Islands) about 5.1 km away
INLAND = (470000, 5810000)        # Clare, sea about 12.7 km away
INLAND_EAST = (495000, 5820000)   # Clare, sea about 8 km away


def pixel(point, transform=GRID_TRANSFORM):
    return rowcol(transform, *point)


def removed_at(mask: LandSeaMask, point) -> bool:
    r, c = pixel(point, mask.transform)
    return bool(mask.remove(r, c, 1, 1)[0, 0])


@pytest.fixture(scope="module")
def sea0():
    return LandSeaMask(UTM29N, GRID_TRANSFORM, GRID_SHAPE, "Sea")


def test_sea_mode_removes_open_sea_and_keeps_land(sea0):
    assert sea0.factor == 1
    full = sea0.remove(0, 0, *GRID_SHAPE)
    assert full.shape == GRID_SHAPE and full.dtype == bool
    assert removed_at(sea0, OFFSHORE) and removed_at(sea0, ARAN_SOUND)
    assert not removed_at(sea0, INLAND) and not removed_at(sea0, INLAND_EAST)
    assert full[:, :20].all()  # the western 5 km is open Atlantic
    assert 0.5 < full.mean() < 0.9
    assert sea0.removed_fraction == pytest.approx(full.mean())


def test_land_mode_is_the_complement_at_zero_tolerance(sea0):
    land0 = LandSeaMask(UTM29N, GRID_TRANSFORM, GRID_SHAPE, "land")
    assert land0.mode == "Land"
    np.testing.assert_array_equal(land0.remove(0, 0, *GRID_SHAPE), ~sea0.remove(0, 0, *GRID_SHAPE))


def test_tolerance_keeps_more_as_it_grows(sea0):
    previous = sea0.remove(0, 0, *GRID_SHAPE)
    counts = [previous.sum()]
    for tol in (1000, 4000, 7000, 20000):
        m = LandSeaMask(UTM29N, GRID_TRANSFORM, GRID_SHAPE, "Sea", tolerance_m=tol)
        removed = m.remove(0, 0, *GRID_SHAPE)
        assert not (removed & ~previous).any()  # only ever keeps more
        counts.append(removed.sum())
        previous = removed
        assert removed_at(m, OFFSHORE)
        assert removed_at(m, ARAN_SOUND) == (tol < 5000)
    assert all(a > b for a, b in zip(counts, counts[1:]))


def test_land_mode_tolerance_keeps_a_coastal_strip_of_land():
    kept = {}
    for tol in (0, 10000, 15000):
        m = LandSeaMask(UTM29N, GRID_TRANSFORM, GRID_SHAPE, "Land", tolerance_m=tol)
        kept[tol] = not removed_at(m, INLAND)
        assert not removed_at(m, OFFSHORE)
    assert kept == {0: False, 10000: False, 15000: True}


def test_working_grid_is_coarser_and_windows_agree():
    # 10 km x 8 km at 10 m across the Shannon estuary: working cells of 50 m (factor 5)
    tr = Affine(10, 0, 485000, 0, -10, 5835000)
    shape = (800, 1000)
    m = LandSeaMask(UTM29N, tr, shape, "Sea")
    assert m.factor == 5 and m.working_shape == (160, 200)
    full = m.remove(0, 0, *shape)
    assert 0 < full.mean() < 1
    blocks = full.reshape(160, 5, 200, 5)
    assert (blocks == blocks[:, :1, :, :1]).all()  # constant on each 5 x 5 block
    for r, c, h, w in [(3, 7, 11, 13), (0, 0, 800, 1), (797, 996, 3, 4), (123, 456, 0, 5)]:
        np.testing.assert_array_equal(m.remove(r, c, h, w), full[r:r + h, c:c + w])
    with pytest.raises(ValueError):
        m.remove(790, 0, 20, 10)


def test_geographic_output_grid():
    tr = Affine(0.005, 0, -10.8, 0, -0.005, 53.3)  # lon/lat grid, about 330 m x 555 m
    m = LandSeaMask("EPSG:4326", tr, (200, 340), "Sea")
    for lon, lat, sea in [(-10.7159, 53.0571, True), (-9.4413, 52.4394, False)]:
        row, col = rowcol(tr, lon, lat)
        assert bool(m.remove(row, col, 1, 1)[0, 0]) is sea


def test_invalid_mode_and_tolerance():
    with pytest.raises(InvalidParameter, match="landseamask"):
        LandSeaMask(UTM29N, GRID_TRANSFORM, GRID_SHAPE, "None")
    with pytest.raises(InvalidParameter, match="landseamask_tolerance"):
        LandSeaMask(UTM29N, GRID_TRANSFORM, GRID_SHAPE, "Sea", tolerance_m=-1)


# --- DEM ---------------------------------------------------------------------------------------

DEM_TRANSFORM = Affine(100, 0, 400000, 0, -100, 5850000)
DEM_SHAPE = (40, 60)


def write_dem(path, data, transform=DEM_TRANSFORM, crs=UTM29N, nodata=-9999.0):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                       count=1, dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data.astype("float32"), 1)
    return str(path)


def half_dem():
    dem = np.full(DEM_SHAPE, 12.0)
    dem[:, :30] = -3.0
    dem[:, 29] = 0.0  # elevation 0 is sea too
    return dem


def test_dem_gives_exactly_the_sea_half(tmp_path):
    dem = write_dem(tmp_path / "dem.tif", half_dem())
    sea = LandSeaMask(UTM29N, DEM_TRANSFORM, DEM_SHAPE, "Sea", dem_path=dem,
                      working_spacing_m=100).remove(0, 0, *DEM_SHAPE)
    expected = np.zeros(DEM_SHAPE, bool)
    expected[:, :30] = True
    np.testing.assert_array_equal(sea, expected)
    land = LandSeaMask(UTM29N, DEM_TRANSFORM, DEM_SHAPE, "Land", dem_path=dem,
                       working_spacing_m=100).remove(0, 0, *DEM_SHAPE)
    np.testing.assert_array_equal(land, ~expected)


def test_dem_on_a_finer_output_grid(tmp_path):
    # working cell centres fall a quarter of a DEM pixel from the DEM's pixel centres, where the
    # bilinear DEM crosses 0 exactly at the pixel edge for symmetric elevations
    data = np.full(DEM_SHAPE, 10.0)
    data[:, :30] = -10.0
    dem = write_dem(tmp_path / "dem.tif", data)
    tr = Affine(10, 0, 400000, 0, -10, 5850000)  # 10 m output, 50 m working cells
    m = LandSeaMask(UTM29N, tr, (400, 600), "Sea", dem_path=dem)
    assert m.factor == 5
    removed = m.remove(0, 0, 400, 600)
    expected = np.zeros((400, 600), bool)
    expected[:, :300] = True
    np.testing.assert_array_equal(removed, expected)


def test_dem_tolerance_in_metres(tmp_path):
    dem = write_dem(tmp_path / "dem.tif", half_dem())
    m = LandSeaMask(UTM29N, DEM_TRANSFORM, DEM_SHAPE, "Sea", tolerance_m=250, dem_path=dem,
                    working_spacing_m=100)
    expected = np.zeros(DEM_SHAPE, bool)
    expected[:, :28] = True  # columns 28 and 29 lie 200 m and 100 m from land
    np.testing.assert_array_equal(m.remove(0, 0, *DEM_SHAPE), expected)


def test_dem_tolerance_sees_land_beyond_the_grid(tmp_path):
    dem = write_dem(tmp_path / "dem.tif", half_dem())
    sea_only = Affine(100, 0, 400000, 0, -100, 5849000)  # columns 0..29 of the DEM, inside it
    m = LandSeaMask(UTM29N, sea_only, (20, 30), "Sea", tolerance_m=250, dem_path=dem,
                    working_spacing_m=100)
    removed = m.remove(0, 0, 20, 30)
    assert removed[:, :28].all() and not removed[:, 28:].any()


def test_dem_nodata_is_never_removed(tmp_path):
    data = half_dem()
    data[:10, :] = -9999.0
    dem = write_dem(tmp_path / "dem.tif", data)
    for mode in ("Sea", "Land"):
        removed = LandSeaMask(UTM29N, DEM_TRANSFORM, DEM_SHAPE, mode, dem_path=dem,
                              working_spacing_m=100).remove(0, 0, *DEM_SHAPE)
        assert not removed[:10].any()
        assert removed[12:].any()


def test_dem_in_another_crs_is_reprojected(tmp_path):
    # a lon/lat DEM whose sea ends at -9.9 E
    tr = Affine(0.01, 0, -10.5, 0, -0.01, 53.0)
    data = np.where(np.arange(100)[None, :] < 60, -1.0, 20.0).repeat(60, axis=0)
    dem = write_dem(tmp_path / "dem_ll.tif", data, transform=tr, crs="EPSG:4326")
    grid = Affine(200, 0, 410000, 0, -200, 5860000)
    m = LandSeaMask(UTM29N, grid, (50, 100), "Sea", dem_path=dem, working_spacing_m=200)
    removed = m.remove(0, 0, 50, 100)
    from pyproj import Transformer

    rows, cols = np.mgrid[0:50, 0:100]
    x, y = xy(grid, rows.ravel(), cols.ravel())
    lon, _ = Transformer.from_crs(UTM29N, "EPSG:4326", always_xy=True).transform(x, y)
    lon = np.asarray(lon).reshape(50, 100)
    far = np.abs(lon + 9.9) > 0.01
    np.testing.assert_array_equal(removed[far], (lon < -9.9)[far])


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_dem_errors(tmp_path):
    grid = (UTM29N, DEM_TRANSFORM, DEM_SHAPE, "Sea")
    with pytest.raises(ServiceError, match="DEM file does not exist: .*missing.tif"):
        LandSeaMask(*grid, dem_path=str(tmp_path / "missing.tif"))
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(ServiceError, match="DEM file cannot be read as a raster: .*bad.tif"):
        LandSeaMask(*grid, dem_path=str(bad))
    elsewhere = write_dem(tmp_path / "far.tif", half_dem(),
                          transform=Affine(100, 0, 600000, 0, -100, 5000000))
    with pytest.raises(ServiceError, match="DEM file does not cover the output area: .*far.tif"):
        LandSeaMask(*grid, dem_path=elsewhere)
    no_crs = tmp_path / "nocrs.tif"
    with rasterio.open(no_crs, "w", driver="GTiff", width=4, height=4, count=1,
                       dtype="float32") as dst:
        dst.write(np.zeros((1, 4, 4), "float32"))
    with pytest.raises(ServiceError, match="DEM file has no coordinate reference system"):
        LandSeaMask(*grid, dem_path=str(no_crs))
