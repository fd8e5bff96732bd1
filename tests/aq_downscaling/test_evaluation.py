"""Evaluation scores: CRPS checked against properscoring, rank histogram, spread/skill, power
spectra, and the bilinear / Lanczos baselines."""

from __future__ import annotations

import numpy as np
import pytest

from components.aq_downscaling.evaluation import (baselines, crps_ensemble, evaluate, flatness, radial_psd,
                                                  rank_histogram, report_html)
from components.aq_downscaling.grid import Grid


@pytest.mark.parametrize("members", [1, 2, 5, 10])
def test_crps_matches_properscoring(members):
    ps = pytest.importorskip("properscoring", reason="properscoring (dev extra) checks the CRPS")
    rng = np.random.default_rng(members)
    obs = rng.gamma(2.0, 5.0, size=(7, 9))
    ens = rng.gamma(2.0, 5.0, size=(7, 9, members))
    ens[0, 0] = obs[0, 0]  # ties
    np.testing.assert_allclose(crps_ensemble(obs, ens), ps.crps_ensemble(obs, ens), rtol=1e-10, atol=1e-12)


def test_crps_of_a_single_member_is_the_absolute_error():
    obs = np.array([1.0, 5.0])
    np.testing.assert_allclose(crps_ensemble(obs, np.array([[3.0], [2.0]])), [2.0, 3.0])


def test_rank_histogram_flat_for_a_calibrated_ensemble_and_u_shaped_otherwise():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200_000)
    good = rng.normal(size=(200_000, 10))
    narrow = 0.3 * rng.normal(size=(200_000, 10))
    flat = rank_histogram(truth, good)
    assert flat.size == 11 and flat.sum() == truth.size
    assert flatness(flat) < 0.05
    u = rank_histogram(truth, narrow)
    assert flatness(u) > 1 and u[0] > 3 * u[5] and u[-1] > 3 * u[5]


def test_rank_ties_are_broken_at_random():
    counts = rank_histogram(np.zeros(10_000), np.zeros((10_000, 4)))
    assert flatness(counts) < 0.1  # all tied: uniform ranks, not all in the first bin


def test_power_spectra():
    rng = np.random.default_rng(0)
    white = rng.normal(size=(20, 64, 64))
    k, p = radial_psd(white)
    assert k[0] > 0 and np.all(np.diff(k) > 0)
    assert p.max() / p.min() < 1.6  # flat
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(white, (0, 3, 3))
    _, ps = radial_psd(smooth)
    assert ps[0] > 100 * ps[-1]  # red


def test_baselines_and_scores():
    lr_grid = Grid(42.0, 3.0, 0.8, 4, 4)
    hr_grid = lr_grid.refine(8)
    rng = np.random.default_rng(1)
    lr = np.full((3, 4, 4), 10.0)
    base = baselines(lr, lr_grid, hr_grid)
    np.testing.assert_allclose(base["bilinear"], 10.0)
    np.testing.assert_allclose(base["lanczos"], 10.0)
    truth = 10 + rng.normal(size=(3, 32, 32))
    perfect = 10 + rng.normal(size=(3, 20, 32, 32))  # same distribution as the truth
    s = evaluate(truth, perfect, lr, lr_grid, hr_grid)
    assert s["bilinear_mae"] == pytest.approx(np.sqrt(2 / np.pi), rel=0.05)
    # expected CRPS of an N-member ensemble from the truth's own N(0, 1): (1 + 1/N) / sqrt(pi)
    assert s["crps"] == pytest.approx((1 + 1 / 20) / np.sqrt(np.pi), rel=0.05)
    assert s["crps_vs_bilinear_mae"] < 0.8
    assert s["spread_skill"] == pytest.approx(1.0, abs=0.05)
    assert s["rank_flatness"] < 0.3  # 3072 points in 21 bins: about 8 % sampling noise per bin
    assert len(s["spectra"]["truth"]) == len(s["spectra"]["wavenumber"]) == len(s["spectra"]["lanczos"])
    page = report_html(s, "test")
    assert "<svg" in page and "CRPS / MAE bilinear" in page
