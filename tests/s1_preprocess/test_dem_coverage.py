"""A DEM that leaves part of the output without heights (the AoI beyond its edge, or its NoData
holes) is refused with one line naming it and the uncovered share, or filled at the height that
--dem_outside names, recorded in run.json and the STAC item; never geocoded at a silent 0 m."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from components.s1_preprocess.cli import main_grd

# inside the synthetic GRD crop (12.4645-12.5320 E, 41.9768-42.0198 N) and the Rome DEM
AOI = "POLYGON((12.47 41.98, 12.525 41.98, 12.525 42.015, 12.47 42.015, 12.47 41.98))"
DEM_WEST_EDGE = 12.45  # the Rome DEM's western edge; 3600 columns per degree


def _copy_dem(src, dst, cols=None, hole=None):
    """The Rome DEM cut to its first ``cols`` columns, or with a NoData ``hole`` (lon0, lon1, lat0, lat1)."""
    with rasterio.open(src) as ds:
        profile = ds.profile
        width = cols or ds.width
        data = ds.read(1, window=Window(0, 0, width, ds.height))
        transform = ds.transform
        nodata = ds.nodata
    if hole is not None:
        lon0, lon1, lat0, lat1 = hole
        (r0, r1), (c0, c1) = rasterio.transform.rowcol(transform, [lon0, lon1], [lat1, lat0])
        data[r0:r1, c0:c1] = nodata
    profile.update(width=width)
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(data, 1)
    return dst


@pytest.fixture(scope="module")
def dems(dem_rome, tmp_path_factory):
    root = tmp_path_factory.mktemp("dems")
    # 40 % of the AoI's width on the DEM, 60 % beyond its eastern edge
    west = _copy_dem(dem_rome, root / "rome-west.tif", cols=round((12.492 - DEM_WEST_EDGE) * 3600))
    holed = _copy_dem(dem_rome, root / "rome-holed.tif", hole=(12.49, 12.50, 41.99, 42.00))
    return west, holed


def _run(grd, out, *args):
    return main_grd(["--input", str(grd), "--outdir", str(out), "--AoI", AOI, "--resolution", "20",
                     "--speckle", "None", "--dem_geoid_height", "47", *map(str, args)])


def _error(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("S1-GRD-preprocess: error: "), lines
    return lines[0]


def test_aoi_beyond_the_dem_is_refused(grd_product, dems, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(grd_product, out, "--dem", dems[0]) == 2
    line = _error(capsys)
    assert "DEM file rome-west.tif does not cover" in line and "--dem_outside" in line
    share = float(re.search(r"does not cover ([\d.]+) %", line).group(1))
    assert 55 < share < 65
    assert not out.exists()


def test_aoi_beyond_the_dem_filled_at_the_geoid(grd_product, dems, tmp_path):
    out = tmp_path / "out"
    assert _run(grd_product, out, "--dem", dems[0], "--dem_outside", "geoid") == 0
    record = json.loads((out / "run.json").read_text())
    metrics = record["outputs"]["metrics"]
    assert record["params"]["dem_outside"] == "geoid" and metrics["dem_outside"] == "geoid"
    assert 55 < metrics["dem_filled_percent"] < 65
    props = json.loads((out / record["outputs"]["stac"]).read_text())["properties"]
    assert props["dem_outside"] == "geoid" and props["dem_filled_percent"] == metrics["dem_filled_percent"]


def test_dem_nodata_hole_refused_or_filled(grd_product, dems, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(grd_product, out, "--dem", dems[1]) == 2
    line = _error(capsys)
    assert "DEM file rome-holed.tif does not cover" in line and "NoData" in line
    assert not out.exists()
    assert _run(grd_product, out, "--dem", dems[1], "--dem_outside", "ellipsoid") == 0
    metrics = json.loads((out / "run.json").read_text())["outputs"]["metrics"]
    assert 2 < metrics["dem_filled_percent"] < 10  # the 0.01 x 0.01 degree hole in a 0.055 x 0.035 AoI


def test_dem_covering_the_aoi_fills_nothing(grd_product, dem_rome, tmp_path):
    out = tmp_path / "out"
    assert _run(grd_product, out, "--dem", dem_rome) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["outputs"]["metrics"]["dem_filled_percent"] == 0
    assert record["outputs"]["metrics"]["valid_percent"] > 90
    with rasterio.open(out / record["outputs"]["product"]) as ds:
        assert np.isfinite(ds.read(1, masked=True).compressed()).all()
