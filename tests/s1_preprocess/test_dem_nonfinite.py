"""A float DEM without a NoData value whose pixels hold NaN or +-inf (a corrupt or badly
converted DEM): those pixels have no height, like NoData. Far from the scene they change
nothing (the product is that of the same DEM with ordinary heights there); under the output
they are refused or filled as --dem_outside says, and the product elsewhere is unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from components.s1_preprocess.cli import main_grd, main_slc
from components.s1_preprocess.geocoding import Grid, read_dem

from .test_dem_coverage import AOI

HOLE = (12.49, 12.50, 41.99, 42.00)  # lon0, lon1, lat0, lat1: inside the AoI
MARGIN_DEG = 0.0006  # about two DEM pixels: the bilinear reach of a pixel without height


def _float_dem(src, dst, value: float, hole=None):
    """The Rome DEM as float32 without NoData value, ``value`` in the 3x3 north-west corner
    pixels (far from the scenes) or in ``hole``."""
    with rasterio.open(src) as ds:
        profile = ds.profile
        data = ds.read(1).astype(np.float32)
    if hole is None:
        data[0:3, 0:3] = value
    else:
        lon0, lon1, lat0, lat1 = hole
        (r0, r1), (c0, c1) = rasterio.transform.rowcol(profile["transform"], [lon0, lon1], [lat1, lat0])
        data[r0:r1, c0:c1] = value
    profile.update(dtype="float32", nodata=None)
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(data, 1)
    return dst


@pytest.fixture(scope="module")
def median(dem_rome):
    with rasterio.open(dem_rome) as ds:
        return float(np.ma.median(ds.read(1, masked=True)))


def _grd(grd, out, dem, *args):
    return main_grd(["--input", str(grd), "--outdir", str(out), "--AoI", AOI, "--resolution", "20",
                     "--speckle", "None", "--dem_geoid_height", "47", "--dem", str(dem), *args])


def _product(out):
    record = json.loads((out / "run.json").read_text())
    with rasterio.open(out / record["outputs"]["product"]) as ds:
        return ds.read(1), ds.transform, record["outputs"]["metrics"]


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_nonfinite_heights_far_from_the_scene_change_nothing(value, grd_product, dem_rome, median, tmp_path):
    ordinary = _float_dem(dem_rome, tmp_path / "ordinary.tif", median)
    corrupt = _float_dem(dem_rome, tmp_path / "corrupt.tif", value)
    assert _grd(grd_product, tmp_path / "a", ordinary) == 0
    assert _grd(grd_product, tmp_path / "b", corrupt) == 0
    (expected, _, m_expected), (got, _, m_got) = _product(tmp_path / "a"), _product(tmp_path / "b")
    assert m_expected["valid_percent"] > 90 and m_got["valid_percent"] == m_expected["valid_percent"]
    np.testing.assert_array_equal(got, expected)


def test_nonfinite_heights_under_the_output_are_no_heights(grd_product, dem_rome, median, tmp_path, capsys):
    ordinary = _float_dem(dem_rome, tmp_path / "ordinary.tif", median, hole=HOLE)
    corrupt = _float_dem(dem_rome, tmp_path / "corrupt.tif", np.inf, hole=HOLE)
    out = tmp_path / "refused"
    assert _grd(grd_product, out, corrupt) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "DEM file corrupt.tif does not cover" in lines[0], lines
    assert not out.exists()

    # the fill height widens the span of heights the inverse map spans: give it to both runs
    assert _grd(grd_product, tmp_path / "a", ordinary, "--dem_outside", "geoid") == 0
    assert _grd(grd_product, tmp_path / "b", corrupt, "--dem_outside", "geoid") == 0
    (expected, transform, _), (got, _, metrics) = _product(tmp_path / "a"), _product(tmp_path / "b")
    assert 2 < metrics["dem_filled_percent"] < 10  # the 0.01 x 0.01 degree hole in a 0.055 x 0.035 AoI
    assert metrics["valid_percent"] > 90
    # away from the hole, the product is the one of the DEM with ordinary heights there
    rows, cols = np.indices(got.shape)
    xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
    lon, lat = _lonlat(tmp_path / "b", np.asarray(xs), np.asarray(ys))
    lon0, lon1, lat0, lat1 = HOLE
    near = ((lon > lon0 - MARGIN_DEG) & (lon < lon1 + MARGIN_DEG) &
            (lat > lat0 - MARGIN_DEG) & (lat < lat1 + MARGIN_DEG)).reshape(got.shape)
    assert 0.02 < near.mean() < 0.15
    np.testing.assert_array_equal(got[~near], expected[~near])


def _lonlat(out, xs, ys):
    from pyproj import Transformer

    record = json.loads((out / "run.json").read_text())
    with rasterio.open(out / record["outputs"]["product"]) as ds:
        crs = ds.crs
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)


def _alpine_dem(dst, corner: float):
    """A float32 GeoTIFF DEM (no NoData value) over the SLC's manifest footprint (45.5-47.6 N,
    8.7-12.5 E): gentle slopes from 300 to 1500 m, ``corner`` in its 3x3 north-west pixels."""
    step = 0.005
    rows, cols = int(2.4 / step), int(4.2 / step)
    y, x = np.mgrid[0:rows, 0:cols]
    data = (300 + 1200 * (0.5 + 0.25 * np.sin(x / 60.0) + 0.25 * np.cos(y / 45.0))).astype(np.float32)
    data[0:3, 0:3] = corner
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": 1, "dtype": "float32",
               "crs": "EPSG:4326", "transform": Affine(step, 0, 8.5, 0, -step, 47.8)}
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(data, 1)
    return dst


def test_slc_with_infinite_heights_far_from_the_scene(slc_product, tmp_path):
    ordinary = _alpine_dem(tmp_path / "ordinary.tif", 900.0)
    corrupt = _alpine_dem(tmp_path / "corrupt.tif", np.inf)
    args = ["--input", str(slc_product), "--resolution", "40", "--speckle", "None"]
    assert main_slc([*args, "--dem", str(ordinary), "--outdir", str(tmp_path / "a")]) == 0
    assert main_slc([*args, "--dem", str(corrupt), "--outdir", str(tmp_path / "b")]) == 0
    (expected, _, m_expected), (got, _, m_got) = _product(tmp_path / "a"), _product(tmp_path / "b")
    assert m_expected["valid_percent"] > 10 and m_got["valid_percent"] == m_expected["valid_percent"]
    np.testing.assert_array_equal(got, expected)


def test_read_dem_gives_nan_for_infinite_heights(tmp_path):
    """NaN is the one "no height" every caller tests for."""
    dem = _alpine_dem(tmp_path / "corrupt.tif", np.inf)
    grid = Grid(CRS.from_epsg(4326), Affine(0.005, 0, 8.5, 0, -0.005, 47.8), 480, 840)
    heights = read_dem(str(dem), grid, 0, 0, 6, 6, geoid_height=47.0)
    assert np.isnan(heights[0:3, 0:3]).all()
    assert np.isfinite(heights[4:, 4:]).all() and (heights[4:, 4:] > 300).all()
