"""Change-detection kernels on simulated signals."""

from __future__ import annotations

import numpy as np
import pytest

from components.s1_change_detection import kernels


def _speckle(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def test_coherence_of_correlated_speckle():
    rng = np.random.default_rng(0)
    z1 = _speckle(rng, (200, 200))
    for gamma in (1.0, 0.8, 0.3):
        z2 = gamma * z1 + np.sqrt(1 - gamma ** 2) * _speckle(rng, z1.shape)
        coh = kernels.coherence(z1 * 3.0, z2 * np.exp(0.7j), (10, 10))
        assert np.nanmedian(coh[10:-10, 10:-10]) == pytest.approx(gamma, abs=0.06)


def test_coherence_leaves_out_nodata():
    rng = np.random.default_rng(1)
    z = _speckle(rng, (50, 50))
    z2 = z.copy()
    z2[:10] = np.nan
    coh = kernels.coherence(z, z2, (5, 5))
    assert np.isnan(coh[:10]).all() and np.allclose(coh[12:], 1.0)


@pytest.mark.parametrize("shift", [(3.0, -2.0), (0.4, 1.3), (-5.25, 0.0)])
def test_phase_correlation_recovers_shifts(shift):
    from scipy import ndimage

    rng = np.random.default_rng(2)
    ref = ndimage.gaussian_filter(rng.exponential(1.0, (128, 128)), 1.5)
    # sec(r + d) = ref(r)  <=>  sec = ref shifted by +d
    sec = ndimage.shift(ref, shift, order=3, mode="wrap")
    d_r, d_c, peak = kernels.phase_correlation(ref, sec)
    assert d_r == pytest.approx(shift[0], abs=0.15) and d_c == pytest.approx(shift[1], abs=0.15)
    assert peak > 0.1


def test_stretch_and_change_rule():
    b1 = np.array([0.1, 0.1, 0.1, np.nan, 0.01])
    b2 = np.array([0.1, 0.4, 0.4, 0.1, 0.001])
    coh = np.array([0.9, 0.9, 0.2, 0.5, 0.1])
    assert kernels.change_mask(b1, b2, coh, 3.0, 0.5).tolist() == [0, 0, 1, 255, 1]
    lo, hi = kernels.percentiles_db(np.array([0.01, 0.1, 1.0]), 0, 100)
    assert (lo, hi) == pytest.approx((-20.0, 0.0))
    assert kernels.stretch_db(np.array([0.01, 0.1, 1.0, np.nan]), lo, hi).tolist() == [1, 128, 255, 0]
    assert kernels.stretch_coherence(np.array([0.0, 1.0, np.nan])).tolist() == [1, 255, 0]
