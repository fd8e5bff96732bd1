"""Speckle filters on real SAR pixels (pyroSAR's geocoded Sentinel-1 dB GeoTIFF, back to linear)
and on simulated speckle: SNAP's definitions, NoData handling, the compiled kernel."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from components.s1_preprocess import _accel, filters
from tests.conftest import sample

ALL = [f for f in filters.FILTERS if f != "None"]


@pytest.fixture(scope="module")
def real_linear():
    path = next(sample("s1-grd-geocoded-db-pyrosar").glob("*.tif"))
    with rasterio.open(path) as ds:
        db = ds.read(1).astype(np.float64)
        nodata = ds.nodata
    x = np.where(db == nodata, np.nan, 10 ** (db / 10))
    return x


@pytest.fixture(scope="module")
def speckle():
    rng = np.random.default_rng(7)
    truth = np.full((120, 160), 0.1)
    truth[:, 80:] = 0.02
    return truth, truth * rng.exponential(1.0, truth.shape)


@pytest.mark.parametrize("name", ALL)
def test_filters_keep_nodata_and_mean_on_real_pixels(name, real_linear):
    out = filters.apply(real_linear, filters.FilterSpec(name=name))
    assert np.array_equal(np.isnan(out), np.isnan(real_linear))
    valid = np.isfinite(real_linear)
    ratio = np.nanmean(out) / np.nanmean(real_linear)
    assert 0.8 < ratio < 1.1, ratio
    assert np.all(out[valid] >= 0)


@pytest.mark.parametrize("name", [n for n in ALL if n != "Median"])
def test_filters_reduce_speckle(name, speckle):
    truth, noisy = speckle
    out = filters.apply(noisy, filters.FilterSpec(name=name))
    region = np.s_[10:-10, 10:70]
    enl_in = noisy[region].mean() ** 2 / noisy[region].var()
    enl_out = out[region].mean() ** 2 / out[region].var()
    assert enl_out > 2 * enl_in, (enl_in, enl_out)
    assert abs(out[region].mean() / truth[region].mean() - 1) < 0.15


def test_boxcar_is_the_window_mean(speckle):
    _, noisy = speckle
    out = filters.apply(noisy, filters.FilterSpec(name="Boxcar", filter_size_x=5, filter_size_y=3))
    ref = ndimage.uniform_filter(noisy, size=(3, 5), mode="constant")
    np.testing.assert_allclose(out[5:-5, 5:-5], ref[5:-5, 5:-5], rtol=1e-10)


def test_lee_definition(speckle):
    """SNAP's Lee: w = 1 - cu^2/ci^2 with the sample variance, mean where ci < cu."""
    _, noisy = speckle
    out = filters.apply(noisy, filters.FilterSpec(name="Lee", enl=1.0))
    r, c = 50, 40
    win = noisy[r - 1:r + 2, c - 1:c + 2]
    mean, var = win.mean(), win.var(ddof=1)
    ci2 = var / mean ** 2
    expected = mean if ci2 < 1.0 else (1 - 1.0 / ci2) * noisy[r, c] + (1.0 / ci2) * mean
    assert out[r, c] == pytest.approx(expected, rel=1e-10)


def test_lee_sigma_keeps_point_targets(speckle):
    _, noisy = speckle
    x = noisy.copy()
    x[60:63, 30:33] = 50.0
    out = filters.apply(x, filters.FilterSpec())
    assert np.array_equal(out[60:63, 30:33], x[60:63, 30:33])


def test_lee_sigma_tables():
    assert filters.lee_sigma_constants(1, 0.9)[:2] == (0.084, 3.941)
    with pytest.raises(ValueError):
        filters.lee_sigma_constants(5, 0.9)


@pytest.mark.skipif(not _accel.available(), reason="numba not installed: only the NumPy kernels run")
def test_compiled_lee_sigma_equals_numpy(speckle, monkeypatch):
    _, noisy = speckle
    x = noisy.copy()
    x[5:8, 5:9] = np.nan
    spec = filters.FilterSpec()
    fast = filters.apply(x, spec, edges=(True, False, True, False))
    monkeypatch.setenv("S1_DISABLE_NUMBA", "1")
    _accel._kernels.cache_clear()
    try:
        assert not _accel.available()
        slow = filters.apply(x, spec, edges=(True, False, True, False))
    finally:
        monkeypatch.delenv("S1_DISABLE_NUMBA")
        _accel._kernels.cache_clear()
    np.testing.assert_allclose(fast, slow, rtol=1e-12, equal_nan=True)


def test_estimate_enl_uses_the_data(speckle):
    _, noisy = speckle
    a = filters.apply(noisy, filters.FilterSpec(name="Gamma Map", enl=1.0))
    b = filters.apply(noisy, filters.FilterSpec(name="Gamma Map", estimate_enl=True))
    assert not np.allclose(a, b)


def _lee_sigma_per_pixel(pad, i1, i2, sv2, svp2, win, tw):
    """Lee Sigma's window pass one pixel at a time: the reference of the row-wise kernel."""
    h, ht = win // 2, tw // 2
    rows, cols = pad.shape[0] - 2 * h, pad.shape[1] - 2 * h
    out = np.empty((rows, cols))
    for r in range(rows):
        for c in range(cols):
            v = pad[r + h, c + h]
            if v < 0.0:
                out[r, c] = np.nan
                continue
            n = s = ss = 0.0
            for dy in range(h - ht, h + ht + 1):
                for dx in range(h - ht, h + ht + 1):
                    q = pad[r + dy, c + dx]
                    m = 1.0 if q >= 0.0 else 0.0
                    n += m
                    s += m * q
                    ss += m * q * q
            mean = s / n
            var = (ss - s * mean) / (n - 1.0) if n > 1.0 else 0.0
            b = 0.0
            if var > 0.0:
                varx = (var - mean * mean * sv2) / (1.0 + sv2)
                b = varx / var if varx > 0.0 else 0.0
            prior = (1.0 - b) * mean + b * v
            lo, hi = prior * i1, prior * i2
            n = s = ss = 0.0
            for dy in range(win):
                for dx in range(win):
                    q = pad[r + dy, c + dx]
                    m = 1.0 if (q >= lo) & (q <= hi) & (q >= 0.0) else 0.0
                    n += m
                    s += m * q
                    ss += m * q * q
            if n == 0.0:
                out[r, c] = v
                continue
            mean = s / n
            var = (ss - s * mean) / (n - 1.0) if n > 1.0 else 0.0
            b = 0.0
            if var > 0.0:
                varx = (var - mean * mean * svp2) / (1.0 + svp2)
                b = varx / var if varx > 0.0 else 0.0
            out[r, c] = (1.0 - b) * mean + b * v
    return out


@pytest.mark.skipif(not _accel.available(), reason="numba not installed: only the NumPy kernels run")
@pytest.mark.parametrize("looks,sigma", [(1, 0.9), (2, 0.5)])
def test_compiled_lee_sigma_is_the_per_pixel_definition(speckle, looks, sigma):
    """The row-wise compiled kernel gives the very pixels of a per-pixel loop (NoData, zeros,
    a NoData block larger than the target window included)."""
    _, noisy = speckle
    x = noisy[:40, 60:110].copy()
    x[5:8, 5:9] = np.nan
    x[20:25, 30:36] = np.nan
    x[12, 40:44] = 0.0
    x[:, -1] = np.nan
    i1, i2, sv2, svp2 = filters.lee_sigma_constants(looks, sigma)
    fast = _accel.lee_sigma(x, i1, i2, sv2, svp2, 7, 3)
    pad = np.pad(np.where(np.isfinite(x), np.maximum(x, 0.0), -1.0), 3, constant_values=-1.0)
    ref = _lee_sigma_per_pixel(pad, i1, i2, sv2, svp2, 7, 3)
    np.testing.assert_array_equal(fast, ref)
