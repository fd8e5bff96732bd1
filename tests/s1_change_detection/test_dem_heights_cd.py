"""S1-CD reads DEM heights as S1-GRD/SLC-preprocess do: in metres whatever the DEM stores (feet,
scaled integers), SRTM's -32768 voids without a NoData tag as voids, and the DEM's declared
vertical datum checked against --dem_geoid_height before any work (one line, exit status 2)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from shapely.geometry import box

from components.s1_change_detection.cli import main
from components.s1_change_detection.interferometry import DemHeights
from tests.conftest import sample

FOOT = 0.3048
AREA = box(12.46, 41.96, 12.54, 42.04)  # inside the Rome DEM


@pytest.fixture(scope="module")
def rome():
    path = next(sample("dem-rome-30m").glob("*.tif"))
    with rasterio.open(path) as ds:
        return path, ds.read(1).astype(np.float64)


def _write(dst, like, heights, crs="EPSG:4326", dtype="float32", nodata=-32767.0, **tags):
    with rasterio.open(like) as ds:
        profile = ds.profile
    profile.update(dtype=dtype, nodata=nodata, crs=CRS.from_user_input(crs))
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(np.asarray(heights).astype(dtype), 1)
        for key, value in tags.items():
            setattr(ds, key, (value,))
    return str(dst)


def test_heights_in_feet_and_scaled_integers_are_metres(rome, tmp_path):
    path, z = rome
    lon, lat = np.meshgrid(np.linspace(12.47, 12.53, 25), np.linspace(41.97, 42.03, 25))
    reference = DemHeights(_write(tmp_path / "m.tif", path, z), AREA, 47.0)(lon, lat)
    assert np.isfinite(reference).all() and reference.min() > 47
    for name, heights, options in (("ft.tif", z / FOOT, {"units": "ft"}),
                                   ("vcrs_ft.tif", z / FOOT, {"crs": "EPSG:4326+8228"}),
                                   ("dm.tif", np.rint(z * 10), {"dtype": "int16", "nodata": -32768, "scales": 0.1})):
        got = DemHeights(_write(tmp_path / name, path, heights, **options), AREA, 47.0)(lon, lat)
        assert np.abs(got - reference).max() < 0.06, name


def test_int16_voids_without_a_nodata_tag_have_no_height(rome, tmp_path):
    path, z = rome
    z = z.copy()
    z[100:140, 100:140] = -32768
    heights = DemHeights(_write(tmp_path / "srtm.tif", path, z, dtype="int16", nodata=None), AREA, 47.0)
    with rasterio.open(path) as ds:
        (lon0, lon1), (lat0, lat1) = rasterio.transform.xy(ds.transform, [110, 130], [110, 130])
    inside = heights(np.array([[lon0, lon1]]), np.array([[lat0, lat1]]))
    assert np.isnan(inside).all()
    assert np.nanmin(heights.data) > 0


def _dem_over(dst, footprint, crs, height):
    lon0, lat0, lon1, lat1 = footprint.bounds
    step = 0.01
    cols, rows = int((lon1 - lon0) / step) + 20, int((lat1 - lat0) / step) + 20
    transform = rasterio.transform.from_origin(lon0 - 10 * step, lat1 + 10 * step, step, step)
    with rasterio.open(dst, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                       crs=CRS.from_user_input(crs), transform=transform, nodata=-32767.0) as ds:
        ds.write(np.full((1, rows, cols), height, np.float32))
    return dst


@pytest.mark.parametrize("crs, geoid, fragment", [
    ("EPSG:4326+5773", None, "declares heights above the geoid (EGM96 height): give --dem_geoid_height"),
    ("EPSG:4979", "47", "declares ellipsoidal heights (WGS 84): --dem_geoid_height 47 would count the geoid twice"),
])
def test_a_dem_datum_at_odds_with_the_geoid_height_is_refused(crs, geoid, fragment, slc_pair, tmp_path, capsys):
    from components.s1_preprocess.product import open_product

    a, b = slc_pair
    footprint = open_product(a, tmp_path / "u").footprint_lonlat
    dem = _dem_over(tmp_path / "dem.tif", footprint, crs, 500.0)
    out = tmp_path / "out"
    args = ["--input1", str(a), "--input2", str(b), "--outdir", str(out), "--dem", str(dem)]
    code = main(args + (["--dem_geoid_height", geoid] if geoid else []))
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1, lines
    assert f"DEM file dem.tif {fragment}" in lines[0]
    assert not out.exists()
