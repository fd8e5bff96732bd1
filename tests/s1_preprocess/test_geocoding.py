"""Inverse geocoding models on the real annotation: the geolocation grid inverted by Newton,
and the range-Doppler model (orbit state vectors) recovering the annotated grid points."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.errors import ServiceError
from components.s1_preprocess import geocoding as G
from components.s1_preprocess.service import gcp_model


def _rd_model(image, orbit=None):
    orbit = orbit or G.Orbit.from_annotation(image.orbit, image.first_line_time)
    if image.projection == "Ground Range":
        col = G.GrdRange(image.coordinate_conversion, image.first_line_time, image.range_pixel_spacing)
        return G.RangeDopplerModel(orbit, 0.0, image.azimuth_time_interval, col)
    fs, tau0 = image.range_sampling_rate, image.slant_range_time
    return G.RangeDopplerModel(orbit, 0.0, image.azimuth_time_interval, lambda t, tau: (tau - tau0) * fs)


def test_geolocation_grid_round_trip(grd_image):
    image = grd_image
    model = G.GcpModel.from_gcp(image.gcp)
    rng = np.random.default_rng(3)
    r = rng.uniform(0, image.lines - 1, 500)
    c = rng.uniform(0, image.samples - 1, 500)
    lon, lat, _ = model.forward(r, c)
    r2, c2 = model.inverse(lon, lat)
    assert np.abs(r2 - r).max() < 1e-6 and np.abs(c2 - c).max() < 1e-6


def test_range_doppler_recovers_grd_grid_points(grd_image):
    image = grd_image
    g = image.gcp
    rows, cols = _rd_model(image).inverse(g.longitude.values, g.latitude.values, g.height.values)
    lines, pixels = np.meshgrid(g.line.values, g.pixel.values, indexing="ij")
    assert np.abs(rows - lines).max() < 0.5
    assert np.abs(cols - pixels).max() < 1.0


def test_range_doppler_recovers_slc_grid_points(slc_image):
    image = slc_image
    g = image.gcp
    # SLC rows: the annotated azimuth time of each grid line
    rows, cols = _rd_model(image).inverse(g.longitude.values, g.latitude.values, g.height.values)
    t = (g.azimuth_time.values - image.first_line_time) / np.timedelta64(1, "s") / image.azimuth_time_interval
    expected_rows = np.broadcast_to(t[:, None], rows.shape)
    pixels = np.broadcast_to(g.pixel.values[None, :], cols.shape)
    assert np.abs(rows - expected_rows).max() < 0.5
    assert np.abs(cols - pixels).max() < 1.0


def test_deburst_model_is_monotonic(slc_image):
    image = slc_image
    model, n_rows = gcp_model(image)
    assert np.all(np.diff(model.rows) > 0)
    assert model.rows[0] <= 0 and model.rows[-1] >= n_rows - 1 - 1501


def test_eof_orbit_file_gives_the_same_geometry(grd_image, tmp_path):
    image = grd_image
    product = image.product
    orbit = image.orbit
    lines = []
    for i, t in enumerate(orbit.azimuth_time.values):
        p, v = orbit.position.values[:, i], orbit.velocity.values[:, i]
        lines.append(f"<OSV><TAI>TAI={str(t)[:26]}</TAI><UTC>UTC={str(t)[:26]}</UTC>"
                     "<Absolute_Orbit>+30148</Absolute_Orbit>"
                     f"<X unit=\"m\">{p[0]:.6f}</X><Y unit=\"m\">{p[1]:.6f}</Y><Z unit=\"m\">{p[2]:.6f}</Z>"
                     f"<VX unit=\"m/s\">{v[0]:.6f}</VX><VY unit=\"m/s\">{v[1]:.6f}</VY><VZ unit=\"m/s\">{v[2]:.6f}</VZ>"
                     f"<Quality>NOMINAL</Quality></OSV>")
    eof = tmp_path / "S1B_OPER_AUX_POEORB_OPOD_20220112T000000_V20211222T225942_20211224T005942.EOF"
    eof.write_text("<?xml version=\"1.0\"?><Earth_Explorer_File><Data_Block type=\"xml\"><List_of_OSVs>"
                   + "".join(lines) + "</List_of_OSVs></Data_Block></Earth_Explorer_File>")
    orb = G.read_eof(tmp_path, "S1B", product.start_time, product.stop_time, image.first_line_time)
    assert orb.source == eof.name
    g = image.gcp
    a = _rd_model(image).inverse(g.longitude.values, g.latitude.values, g.height.values)
    b = _rd_model(image, orb).inverse(g.longitude.values, g.latitude.values, g.height.values)
    assert np.abs(a[0] - b[0]).max() < 1e-3 and np.abs(a[1] - b[1]).max() < 1e-3
    with pytest.raises(ServiceError, match="no orbit file"):
        G.read_eof(tmp_path, "S1A", product.start_time, product.stop_time, image.first_line_time)


def test_bilinear_sampling_paths_agree(monkeypatch):
    from components.s1_preprocess import _accel

    rng = np.random.default_rng(5)
    src = rng.random((40, 50))
    src[10, 10] = np.nan
    rows = rng.uniform(-2, 42, (30, 30))
    cols = rng.uniform(-2, 52, (30, 30))
    first = G.sample_bilinear(src, rows, cols)
    monkeypatch.setenv("S1_DISABLE_NUMBA", "0" if not _accel.available() else "1")
    _accel._kernels.cache_clear()
    try:
        second = G.sample_bilinear(src, rows, cols)
    finally:
        monkeypatch.delenv("S1_DISABLE_NUMBA")
        _accel._kernels.cache_clear()
    np.testing.assert_allclose(first, second, rtol=1e-12, equal_nan=True)
    inside = (rows >= 0) & (rows <= 39) & (cols >= 0) & (cols <= 49)
    assert np.isnan(first[~inside]).all()
    r, c = 3.25, 7.5
    expected = (0.75 * (0.5 * src[3, 7] + 0.5 * src[3, 8]) + 0.25 * (0.5 * src[4, 7] + 0.5 * src[4, 8]))
    assert G.sample_bilinear(src, np.array([[r]]), np.array([[c]]))[0, 0] == pytest.approx(expected)
