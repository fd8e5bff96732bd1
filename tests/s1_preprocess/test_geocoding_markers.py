"""Where bright markers planted at known image positions of the real Rome GRD land in the
geocoded product, against an independent range-Doppler forward solution (polynomial orbit fit,
the annotation's ground-to-slant range polynomials, Newton on the WGS84 ellipsoid raised to the
geolocation grid's height). The markers sit between the rows of the geolocation grid, over the
whole scene, where interpolating the grid is off by several pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from components.s1_preprocess.cli import main_grd
from components.s1_preprocess.geocoding import GcpModel
from tests.fixtures.s1_markers import write_marked_grd

C = 299_792_458.0
A, E2 = 6378137.0, 6.69437999014e-3
RESOLUTION = 10.0
# (line, pixel): half-way between consecutive geolocation grid rows (every 2005 lines), across
# the swath (sub-swaths IW1-IW3), in all nine row intervals
MARKERS = [(1002, 2500), (3007, 20000), (5012, 9000), (7017, 24000), (9022, 5000), (11027, 15000),
           (13032, 22000), (15037, 12000), (16372, 4000)]


def _ecef(lon, lat, h):
    lon, lat = np.radians(lon), np.radians(lat)
    n = A / np.sqrt(1 - E2 * np.sin(lat) ** 2)
    return np.array([(n + h) * np.cos(lat) * np.cos(lon), (n + h) * np.cos(lat) * np.sin(lon),
                     (n * (1 - E2) + h) * np.sin(lat)])


def truth_lonlat(image, line, pixel):
    """Forward geocoding of image position (line, pixel) at the geolocation grid's height."""
    t0 = image.first_line_time
    orb = image.orbit
    ts = (orb.azimuth_time.values - t0) / np.timedelta64(1, "s")
    t = line * image.azimuth_time_interval
    near = np.argsort(np.abs(ts - t))[:8]
    fits = [np.polynomial.Polynomial.fit(ts[near], orb.position.values[k, near], 5) for k in range(3)]
    sat = np.array([f(t) for f in fits])
    vel = np.array([f.deriv()(t) for f in fits])
    cc = image.coordinate_conversion
    tc = (cc.azimuth_time.values - t0) / np.timedelta64(1, "s")
    ground = pixel * image.range_pixel_spacing
    slant = [np.polynomial.polynomial.polyval(ground - cc.gr0.values[k], cc.grsrCoefficients.values[k])
             for k in range(tc.size)]
    rng = np.interp(t, tc, slant)
    grid = GcpModel.from_gcp(image.gcp)
    lon, lat, h = (float(v) for v in grid.forward(line, pixel))

    def residual(x):
        d = _ecef(x[0], x[1], h) - sat
        return np.array([np.linalg.norm(d) - rng, d @ vel / np.linalg.norm(vel)])

    x = np.array([lon, lat])
    for _ in range(20):
        f = residual(x)
        jac = np.column_stack([(residual(x + dx) - f) / 1e-6 for dx in np.eye(2) * 1e-6])
        x = x - np.linalg.solve(jac, f)
    assert np.abs(residual(x)).max() < 1e-3
    return x


@pytest.fixture(scope="module")
def marked_grd(real_grd, tmp_path_factory):
    return write_marked_grd(tmp_path_factory.mktemp("marked"), real_grd, MARKERS)


def _landing(tif):
    """Lon/lat of the intensity-weighted centre of the marker in a product."""
    with rasterio.open(tif) as ds:
        v = ds.read(1, masked=True).filled(np.nan).astype(np.float64)
        transform = ds.transform
    w = np.where(np.isfinite(v), v, 0.0)
    w = np.clip(w - 10 * np.nanmedian(v), 0, None)  # the marker, well above the background
    r, c = np.nonzero(w)
    wt = w[r, c]
    row, col = (r * wt).sum() / wt.sum() + 0.5, (c * wt).sum() / wt.sum() + 0.5
    return (transform.c + transform.a * col, transform.f + transform.e * row), transform.a


def test_markers_land_within_a_pixel_without_dem(marked_grd, grd_image, tmp_path):
    errors = []
    for k, (line, pixel) in enumerate(MARKERS):
        lon, lat = truth_lonlat(grd_image, line, pixel)
        half = 0.004
        aoi = f"POLYGON(({lon - half} {lat - half},{lon + half} {lat - half},{lon + half} {lat + half}," \
              f"{lon - half} {lat + half},{lon - half} {lat - half}))"
        out = tmp_path / f"m{k}"
        assert main_grd(["--input", str(marked_grd), "--outdir", str(out), "--AoI", aoi, "--speckle", "None",
                         "--thermal_noise_removal", "false", "--border_noise_removal", "false",
                         "--resolution", str(RESOLUTION)]) == 0
        record = json.loads((out / "run.json").read_text())
        (x, y), px = _landing(out / record["outputs"]["product"])
        errors.append(np.hypot(x - lon, y - lat) / px)
    errors = np.array(errors)
    assert errors.max() <= 1.0, f"marker errors in output pixels: {np.round(errors, 2)}"
