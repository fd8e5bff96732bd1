"""S1-GRD-preprocess and S1-SLC-preprocess from SAFE to COG on synthetic products built on the
real sample geometry: radiometry, noise, geocoding (ellipsoid and terrain), masks, sidecars."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from components.s1_preprocess import radar
from components.s1_preprocess.cli import main_grd, main_slc
from components.s1_preprocess.params import S1GRDParams
from components.s1_preprocess.product import open_product
from tests.fixtures import s1_products
from tests.stac_schema import validate_item

ROME_AOI = "POLYGON((12.49 41.98, 12.53 41.98, 12.53 42.00, 12.49 42.00, 12.49 41.98))"


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1, masked=True), ds.profile, ds.overviews(1), ds.descriptions


def _run(main, product, out, *args):
    code = main(["--input", str(product), "--outdir", str(out), *map(str, args)])
    assert code == 0
    record = json.loads((out / "run.json").read_text())
    tif = out / record["outputs"]["product"]
    return tif, record


def _bright_centroid(data):
    """Map coordinates (row, col) of the bright block (+3 dB) in an output."""
    v = data.filled(np.nan)
    mask = v > 10 ** (0 / 10)
    r, c = np.nonzero(mask)
    return r.mean(), c.mean()


def test_grd_default_chain(grd_product, tmp_path):
    out = tmp_path / "out"
    tif, record = _run(main_grd, grd_product, out, "--calibration", "SigmaDB", "--resolution", 20)
    data, profile, overviews, desc = _read(tif)
    assert profile["crs"].to_epsg() == 4326
    assert profile["transform"].a == pytest.approx(20 / 111320)
    assert profile["dtype"] == "float32" and profile["nodata"] == -9999.0 and desc == ("SigmaDB_VV",)
    with rasterio.open(tif) as ds:  # the unit in GDAL's field, where gdalinfo and QGIS show it
        assert ds.units == ("dB",) and "units" not in ds.tags(1)
    v = data.compressed()
    assert 50 < record["outputs"]["metrics"]["valid_percent"] < 95
    assert np.median(v) == pytest.approx(-8.0, abs=1.0)  # the simulated land backscatter
    assert np.percentile(v, 3) < -17  # the water body
    assert record["outputs"]["metrics"]["geocoding"].startswith("range-Doppler on the ellipsoid")
    assert record["outputs"]["metrics"]["orbit"].startswith("annotation state vectors")
    assert record["params"]["speckle"] == "Lee Sigma"
    stac = json.loads((out / record["outputs"]["stac"]).read_text())
    validate_item(stac)
    assert stac["properties"]["sar:polarizations"] == ["VV"] and stac["properties"]["sat:relative_orbit"] > 0
    assert stac["properties"]["sar:instrument_mode"] == "IW" and stac["assets"]["data"]["href"] == tif.name
    assert (out / record["outputs"]["quicklook"]).stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == sorted([tif.name, record["outputs"]["stac"],
                                                            record["outputs"]["quicklook"], "run.json"])


def test_thermal_noise_removal_lowers_dark_areas(grd_product, tmp_path):
    meds = []
    for flag in ("true", "false"):
        tif, _ = _run(main_grd, grd_product, tmp_path / flag, "--thermal_noise_removal", flag, "--speckle", "None",
                      "--resolution", 40)
        v = _read(tif)[0].compressed()
        meds.append(np.percentile(v, 2))
    assert meds[0] < meds[1]


def test_grd_terrain_correction_agrees_with_ellipsoid_on_flat_dem(grd_product, tmp_path, real_grd):
    """A flat DEM at the geolocation grid's height: range-Doppler and ellipsoid geocoding must
    put the bright block at the same place (within a pixel)."""
    from components.s1_preprocess.service import gcp_model

    image = open_product(grd_product, tmp_path / "x").image("IW", "VV")
    model, _ = gcp_model(image)
    lon, lat, h = model.forward(np.array([200.0]), np.array([250.0]))
    dem = tmp_path / "flat.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=200, height=200, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(lon[0] - 0.2, lat[0] + 0.2, 0.002, 0.002)) as ds:
        ds.write(np.full((1, 200, 200), h[0], np.float32))
    ell, _ = _run(main_grd, grd_product, tmp_path / "ell", "--resolution", 20)
    ter, record = _run(main_grd, grd_product, tmp_path / "ter", "--resolution", 20, "--dem", dem)
    assert record["outputs"]["metrics"]["geocoding"] == "range-Doppler terrain correction"
    a, pa, _, _ = _read(ell)
    b, pb, _, _ = _read(ter)
    xa = pa["transform"] @ _bright_centroid(a)[::-1]
    xb = pb["transform"] @ _bright_centroid(b)[::-1]
    assert abs(xa[0] - xb[0]) < 1.5 * pa["transform"].a and abs(xa[1] - xb[1]) < 1.5 * pa["transform"].a


def test_grd_rome_dem_aoi_utm_and_zip(real_grd, dem_rome, tmp_path):
    product = s1_products.write_grd(tmp_path / "in", source=real_grd, pols=("VV",), as_zip=True)
    tif, record = _run(main_grd, product, tmp_path / "out", "--dem", dem_rome, "--dem_geoid_height", 47,
                       "--AoI", ROME_AOI, "--projection", "EPSG:32633", "--calibration", "GammaDB")
    data, profile, _, _ = _read(tif)
    assert profile["crs"].to_epsg() == 32633 and profile["transform"].a == 10.0
    assert profile["width"] < 400 and profile["height"] < 300  # cropped to the AoI
    assert record["outputs"]["metrics"]["valid_percent"] > 90
    assert record["params"]["calibration"] == "GammaDB"


def test_land_sea_mask_and_cross_pol(grd_product, dem_rome, tmp_path):
    vv, rec_vv = _run(main_grd, grd_product, tmp_path / "vv", "--resolution", 40, "--AoI", ROME_AOI)
    vh, _ = _run(main_grd, grd_product, tmp_path / "vh", "--resolution", 40, "--AoI", ROME_AOI, "--polarization", "VH")
    assert np.median(_read(vh)[0].compressed()) < np.median(_read(vv)[0].compressed()) / 3
    land, rec = _run(main_grd, grd_product, tmp_path / "land", "--resolution", 40, "--AoI", ROME_AOI,
                     "--landseamask", "Land", "--dem", dem_rome, "--dem_geoid_height", 47)
    assert rec["outputs"]["metrics"]["valid_percent"] < 5 < rec_vv["outputs"]["metrics"]["valid_percent"]


def test_border_noise_is_removed(real_grd, tmp_path):
    product = s1_products.write_grd(tmp_path / "in", source=real_grd, pols=("VV",), window=(7900, 0, 128, 300),
                                    border=20)
    p = open_product(product, tmp_path)
    image = p.image("IW", "VV")
    params = S1GRDParams(speckle="None")
    raster = radar.process_grd(p, image, params, (0, image.lines, 0, image.samples), (1, 1), str(tmp_path / "r.tif"))
    with rasterio.open(raster.path) as ds:
        data = ds.read(1)
    assert np.isnan(data[:, :20]).all()
    assert np.isfinite(data[:, 25:]).mean() > 0.99


def test_border_trim_kernel():
    from components.s1_preprocess.radiometry import border_trim_rows

    power = np.full((3, 12), 100.0)
    power[:, :2] = 0  # zero fill (NoData)
    power[:, 2:5] = 0.1  # border noise below the threshold
    power[1, 3] = 10.0  # row 1: a good sample stops the trim earlier
    valid = power > 0
    removed = border_trim_rows(power, valid, border_limit=500, trim_threshold=0.5, right=False)
    assert removed[0].tolist() == [False, False, True, True, True] + [False] * 7
    assert removed[1].tolist() == [False, False, True] + [False] * 9
    limited = border_trim_rows(power, valid, border_limit=2, trim_threshold=0.5, right=False)
    assert limited[0, 2:5].tolist() == [True, True, False]


def test_slc_chain(slc_product, tmp_path):
    tif, record = _run(main_slc, slc_product, tmp_path / "out", "--resolution", 20, "--calibration", "BetaDB")
    data, profile, _, _ = _read(tif)
    assert record["outputs"]["metrics"]["looks"] == [1, 4]
    validate_item(json.loads((tmp_path / "out" / record["outputs"]["stac"]).read_text()))
    v = data.compressed()
    assert np.median(v) == pytest.approx(-8.0 + 1.0, abs=2.5)  # beta0 > sigma0 by 1/sin(incidence)
    assert v.size > 10000


def test_deburst_plan(slc_product, tmp_path):
    image = open_product(slc_product, tmp_path).image("IW1", "VV")
    plan = radar.deburst_plan(image)
    lpb = image.lines_per_burst
    burst = plan.source_line // lpb
    assert np.all(np.diff(burst) >= 0) and set(burst) == {0, 1}
    switch = np.flatnonzero(np.diff(burst))[0]
    # the switch sits in the overlap: the last line of burst 0 used is before its last valid line
    last_valid_0 = np.flatnonzero(image.bursts[0].first_valid_sample >= 0)[-1]
    first_valid_1 = np.flatnonzero(image.bursts[1].first_valid_sample >= 0)[0]
    assert plan.source_line[switch] % lpb < last_valid_0
    assert plan.source_line[switch + 1] % lpb > first_valid_1
    assert np.all(plan.first_valid >= 0)


def test_a_coarse_grid_keeps_the_edges_of_the_scene(grd_product, tmp_path):
    """The radar window a grid needs spans its inverse map's nodes outside the image too: they
    lie 32 output pixels apart (3.2 km at 100 m, most of this 4 x 5 km crop), and the pixels
    between an outside node and one inside are in the product."""
    shares = {}
    for resolution in (20, 100):
        tif, _ = _run(main_grd, grd_product, tmp_path / str(resolution), "--resolution", resolution,
                      "--speckle", "None")
        data, *_ = _read(tif)
        shares[resolution] = data.count() / data.size
    assert shares[100] == pytest.approx(shares[20], abs=0.1)  # the same footprint at either pixel size


@pytest.mark.parametrize("speckle", ["None", "Boxcar", "Lee Sigma"])
def test_a_pixel_is_the_same_whatever_window_asked_for_it(grd_product, tmp_path, speckle):
    """The looks of a GRD pixel are fixed by the whole image's multilook grid, not by the window
    the output grid needs (an AoI, a DEM's height range)."""
    whole, _ = _run(main_grd, grd_product, tmp_path / "whole", "--resolution", 40, "--speckle", speckle)
    aoi = "POLYGON((12.487 41.983, 12.513 41.983, 12.513 42.007, 12.487 42.007, 12.487 41.983))"
    part, _ = _run(main_grd, grd_product, tmp_path / "part", "--resolution", 40, "--speckle", speckle, "--AoI", aoi)
    with rasterio.open(whole) as a, rasterio.open(part) as b:
        window = rasterio.windows.from_bounds(*b.bounds, transform=a.transform).round_offsets().round_lengths()
        assert (window.width, window.height) == (b.width, b.height)  # one grid (origins on whole pixels)
        x, y = a.read(1, window=window, masked=True), b.read(1, masked=True)
    both = ~x.mask & ~y.mask
    assert both.sum() > 100
    # the same looks; what differs is the inverse map's interpolation between its nodes, which lie
    # on each grid's own 32-pixel lattice (< 0.01 radar pixel: under 2 % in this speckle). Looks
    # taken from a window's own start differed by up to 300 %.
    rel = np.abs(y[both] / x[both] - 1)
    assert np.median(rel) < 1e-3 and rel.max() < 0.05
