"""TOPS kernels: steering parameters of the real IW1 annotation, the sinc resampler on a
base-band signal, the geometry against the pre-processing package's range-Doppler model."""

from __future__ import annotations

import numpy as np
import pytest

from components.s1_change_detection import interferometry, tops
from components.s1_preprocess import geocoding, radar
from components.s1_preprocess import service as s1
from components.s1_preprocess.product import open_product


@pytest.fixture(scope="module")
def iw1(real_slc, tmp_path_factory):
    product = open_product(real_slc, tmp_path_factory.mktemp("iw1"), expect="SLC")
    image = product.image("IW1", "VV")
    return product, image, s1.load_orbit(product, image, None)[0]


def test_steering_of_the_real_annotation(iw1):
    _, image, orbit = iw1
    st = interferometry.steering(image, orbit)
    assert len(st) == len(image.bursts) == 9
    kt, _, _ = st[4].rates(np.array([0.0, image.samples / 2, image.samples - 1.0]))
    assert np.all((kt > 1650) & (kt < 1800))  # Hz/s: the Doppler centroid sweep within a burst
    sweep = tops.doppler(st[4], image.lines_per_burst, 0.0) - tops.doppler(st[4], 0, 0.0)
    prf = 1 / image.azimuth_time_interval
    assert sweep > 10 * prf  # why a burst must be deramped before azimuth interpolation


def test_resampling_a_base_band_signal():
    rng = np.random.default_rng(3)
    n = 256
    spec = np.zeros((n, n), complex)
    band = (np.abs(np.fft.fftfreq(n)) < 0.35)
    spec[np.ix_(band, band)] = rng.standard_normal((band.sum(), band.sum())) + 1j * rng.standard_normal(
        (band.sum(), band.sum()))
    signal = np.fft.ifft2(spec)
    dy, dx = 0.37, -0.21
    f = np.fft.fftfreq(n)
    truth = np.fft.ifft2(spec * np.exp(2j * np.pi * (f[:, None] * dy + f[None, :] * dx)))  # signal(r + dy, c + dx)
    rows, cols = np.meshgrid(np.arange(n) + dy, np.arange(n) + dx, indexing="ij")
    out = tops.resample(signal, rows, cols)
    core = np.s_[8:-8, 8:-8]
    err = np.abs(out[core] - truth[core]) ** 2
    assert np.sqrt(err.mean() / np.mean(np.abs(truth[core]) ** 2)) < 0.02
    assert np.isnan(out[:3]).all() and np.isnan(out[:, -3:]).all()  # kernels reaching outside


def test_geometry_round_trip(iw1):
    _, image, orbit = iw1
    gcp, n = s1.gcp_model(image)
    rows, cols = np.array([100.0, n / 2, n - 100.0]), np.array([50.0, image.samples / 2, image.samples - 50.0])
    plan = radar.plan_for(image)
    t = plan.t_first + plan.interval * rows
    rng = tops.SPEED_OF_LIGHT / 2 * (image.slant_range_time + cols / image.range_sampling_rate)
    lon, lat, h = gcp.forward(rows, cols)
    p = tops.forward(orbit.state, t, rng, h + 300.0, geocoding.geodetic_to_ecef(lon, lat, h))
    lon2, lat2, h2 = tops.ecef_to_geodetic(p)
    assert h2 == pytest.approx(h + 300.0, abs=0.01)
    assert np.allclose(geocoding.geodetic_to_ecef(lon2, lat2, h2), p, atol=1e-3)
    model = geocoding.RangeDopplerModel(orbit, 0.0, 1.0, lambda t_, tau: tau)
    t_back, tau = model.inverse(lon2, lat2, h2)
    assert t_back == pytest.approx(t, abs=1e-6)  # Newton stops on a step below 1e-5 row interval (here 1 s)
    assert tau * tops.SPEED_OF_LIGHT / 2 == pytest.approx(rng, abs=1e-3)
    t3, r3 = tops.zero_doppler(orbit.state, p, t + 1.0)
    assert t3 == pytest.approx(t, abs=1e-7) and r3 == pytest.approx(rng, abs=1e-3)
