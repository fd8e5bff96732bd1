"""--calibration GammaRTC (radiometric terrain flattening, Small 2011) against sarsen 0.9.6's
``terrain_correction(..., correct_radiometry="gamma_bilinear")`` on the same product, DEM and
grid (the golden array and how it was made: tests/fixtures/rtc_golden/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from components.s1_preprocess.cli import main_grd
from tests.fixtures.rtc_golden.make_golden import crop_dem
from tests.fixtures.s1_markers import write_marked_grd

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "rtc_golden" / "sarsen_gamma_rtc.npz"
ARCSECOND_M = 111320.0 / 3600  # the DEM's pixel in the project's metres-per-degree convention


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


@pytest.fixture(scope="module")
def case(real_grd, dem_rome, golden, tmp_path_factory):
    """The constant-DN copy of the Rome GRD and the DEM crop sarsen was given."""
    root = tmp_path_factory.mktemp("rtc")
    product = write_marked_grd(root, real_grd, [], background=int(golden["constant_dn"]))
    dem = crop_dem(dem_rome, root / "dem.tif")
    # sarsen took the heights as ellipsoidal: so does S1-GRD-preprocess for a DEM that declares no
    # vertical datum at --dem_geoid_height 0 (the crop's EGM96 declaration would need a geoid height)
    with rasterio.open(dem, "r+") as ds:
        ds.crs = rasterio.crs.CRS.from_epsg(4326)
    with rasterio.open(dem) as ds:
        assert ds.crs.to_epsg() == 4326
        return product, dem, ds.transform


def _run(case, out, *args):
    product, dem, t = case
    q = t.a / 4  # the AoI a quarter pixel inside the DEM's edge: the output grid is the DEM's grid
    x0, y1 = t.c + q, t.f - q
    x1, y0 = t.c + 160 * t.a - q, t.f + 160 * t.e + q
    aoi = f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
    code = main_grd(["--input", str(product), "--outdir", str(out), "--dem", str(dem), "--AoI", aoi,
                     "--resolution", repr(ARCSECOND_M), "--speckle", "None", "--thermal_noise_removal", "false",
                     "--border_noise_removal", "false", *args])
    assert code == 0
    record = json.loads((out / "run.json").read_text())
    with rasterio.open(out / record["outputs"]["product"]) as ds:
        return ds.read(1, masked=True).filled(np.nan), ds.transform, record


def test_gamma_rtc_agrees_with_sarsen(case, golden, tmp_path):
    ours, transform, record = _run(case, tmp_path / "rtc", "--calibration", "GammaRTC")
    assert np.allclose(list(transform)[:6], golden["transform"], rtol=0, atol=1e-9)
    ref = golden["gamma_rtc"].astype(np.float64)
    assert ours.shape == ref.shape
    both = np.isfinite(ours) & np.isfinite(ref) & (ref > 0)
    assert both.mean() > 0.98
    ratio = ours[both] / ref[both]
    assert np.mean(np.abs(ratio - 1) <= 0.02) >= 0.95, np.percentile(ratio, [1, 5, 50, 95, 99])
    assert record["params"]["calibration"] == "GammaRTC"


def test_gamma_rtc_differs_from_ellipsoid_gamma(case, tmp_path):
    """Against plain gamma0 (the ellipsoid's reference area) on the same grid, the flattening
    changes most pixels by more than the 2 % allowed against sarsen: that comparison can fail."""
    rtc, _, _ = _run(case, tmp_path / "rtc", "--calibration", "GammaRTC")
    plain, _, _ = _run(case, tmp_path / "gamma", "--calibration", "Gamma")
    ok = np.isfinite(rtc) & np.isfinite(plain)
    assert ok.mean() > 0.98
    assert np.mean(np.abs(rtc[ok] / plain[ok] - 1) > 0.02) > 0.5


def test_gamma_rtc_needs_a_dem(grd_product, tmp_path, capsys):
    out = tmp_path / "out"
    assert main_grd(["--input", str(grd_product), "--outdir", str(out), "--calibration", "GammaRTCDB"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "--calibration GammaRTCDB (terrain flattening) needs the terrain: give --dem" in lines[0]
    assert not out.exists()
