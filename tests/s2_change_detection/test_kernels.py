"""The pure-NumPy kernels against values worked out by hand or planted in generated data."""

from __future__ import annotations

import numpy as np
import pytest

from components.s2_change_detection import cva
from components.s2_change_detection.classify import fit_polar_classes
from components.s2_change_detection.engine import (ArraySink, ArraySource, DetectionConfig, NODATA_CLASS,
                                                   detect_changes)
from components.s2_change_detection.normalisation import TooFewPixels, fit_normalisation


def test_magnitude_and_angle_by_hand():
    d = np.array([[3.0, 0.0, -1.0, 0.0], [4.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
                 np.float32).reshape(4, 1, 4)
    rho, theta = cva.magnitude_angle(d, (1.0, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(rho.ravel(), [5.0, 2.0, 1.0, 0.0], atol=1e-6)
    # arccos(3/5) = 53.130..., a vector along band 2 is at 90 degrees, the opposite of r at 180
    np.testing.assert_allclose(theta.ravel()[:3], [53.1301024, 90.0, 180.0], atol=1e-4)
    # the reference need not be a unit vector
    _, theta2 = cva.magnitude_angle(d, (2.0, 2.0, 0.0, 0.0))
    np.testing.assert_allclose(theta2.ravel()[:3], [8.1301024, 45.0, 135.0], atol=1e-4)


def test_chi2_threshold_matches_the_tables():
    # chi-squared quantiles from statistical tables
    assert cva.chi2_threshold(99.99, 4) == pytest.approx(23.5127, abs=1e-3)
    assert cva.chi2_threshold(95.0, 2) == pytest.approx(5.9915, abs=1e-3)
    assert cva.chi2_threshold(99.0, 1) == pytest.approx(6.6349, abs=1e-3)


def test_chi2_statistic_is_the_mahalanobis_distance():
    d = np.array([1.0, 2.0]).reshape(2, 1, 1)
    assert cva.chi2_statistic(d, np.eye(2))[0, 0] == pytest.approx(5.0)
    # sigma 0.5 and 2 on the diagonal: (1/0.5)^2 + (2/2)^2 = 5
    assert cva.chi2_statistic(d, np.diag([4.0, 0.25]))[0, 0] == pytest.approx(5.0)
    # correlated noise: S = [[1, .5], [.5, 1]], S^-1 = [[4, -2], [-2, 4]] / 3 -> (4 - 8 + 16) / 3 = 4
    inv = np.linalg.inv(np.array([[1.0, 0.5], [0.5, 1.0]]))
    assert cva.chi2_statistic(d, inv)[0, 0] == pytest.approx(4.0)


def test_noise_model_from_moments():
    z = np.array([[1.0, -1.0, 2.0, -2.0], [0.5, -0.5, 1.0, -1.0]])
    m, n = cva.second_moments(z.reshape(2, 2, 2), np.ones((2, 2), bool))
    full = cva.NoiseModel.from_moments(m, n, diagonal=False)
    np.testing.assert_allclose(full.covariance, [[2.5, 1.25], [1.25, 0.625]])
    diag = cva.NoiseModel.from_moments(m, n, diagonal=True)
    np.testing.assert_allclose(diag.covariance, [[2.5, 0.0], [0.0, 0.625]])
    assert np.isfinite(full.inverse()).all()  # singular (perfectly correlated) but regularised


def test_median_filter_of_the_difference_keeps_a_block_and_drops_a_speck():
    x1 = np.zeros((1, 9, 9), np.float32)
    x2 = np.zeros((1, 9, 9), np.float32)
    x2[0, 2:6, 2:6] = 1.0  # a 4x4 change
    x2[0, 7, 7] = 1.0  # an isolated pixel
    d = cva.filtered_difference(x1, x2, np.ones((9, 9), bool), 3)
    expected = np.zeros((9, 9))
    expected[2:6, 2:6] = 1.0
    for r, c in ((2, 2), (2, 5), (5, 2), (5, 5)):  # a corner has 4 of 9 neighbours inside
        expected[r, c] = 0.0
    np.testing.assert_array_equal(d[0], expected)


def test_remove_small_regions_uses_8_connectivity():
    m = np.zeros((8, 8), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # diagonal: one region of 3
    m[5:7, 5:7] = True  # a region of 4
    m[0, 7] = True  # single
    out = cva.remove_small_regions(m, 3)
    assert out[0, 0] and out[2, 2] and out[5:7, 5:7].all() and not out[0, 7]
    assert cva.remove_small_regions(m, 5).sum() == 0
    assert (cva.remove_small_regions(m, 1) == m).all()


def test_normalisation_recovers_gain_and_offset_despite_changes():
    rng = np.random.default_rng(7)
    n = 20000
    x1 = rng.uniform(0.02, 0.4, size=(3, n))
    gain, offset = np.array([1.1, 0.9, 1.25]), np.array([0.01, -0.02, 0.005])
    # date 2 = (x1 - offset) / gain: its normalisation back onto date 1 is gain * x2 + offset
    x2 = (x1 - offset[:, None]) / gain[:, None] + rng.normal(0, 0.002, size=(3, n))
    changed = rng.random(n) < 0.15
    x2[:, changed] += rng.uniform(0.1, 0.3, size=(3, changed.sum()))
    norm = fit_normalisation(x1, x2)
    np.testing.assert_allclose(norm.gain, gain, rtol=0.01)
    np.testing.assert_allclose(norm.offset, offset, atol=0.002)
    assert norm.n_stable == n // 2
    with pytest.raises(TooFewPixels):
        fit_normalisation(x1[:, :10], x2[:, :10])


def test_kmeans_finds_planted_clusters_ordered_by_angle_and_is_reproducible():
    rng = np.random.default_rng(3)
    centres = [(0.30, 150.0), (0.10, 30.0), (0.20, 90.0)]
    rho = np.concatenate([rng.normal(c[0], 0.01, 300) for c in centres])
    theta = np.concatenate([rng.normal(c[1], 3.0, 300) for c in centres])
    a = fit_polar_classes(rho, theta, 3)
    b = fit_polar_classes(rho, theta, 3)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_allclose(a.centroids[:, 0], [0.10, 0.20, 0.30], atol=0.005)
    np.testing.assert_allclose(a.centroids[:, 1], [30.0, 90.0, 150.0], atol=1.0)
    labels = a.assign(rho, theta)
    assert [np.bincount(labels[i * 300:(i + 1) * 300]).argmax() for i in range(3)] == [3, 1, 2]
    # fewer distinct changed pixels than classes asked: fewer classes
    assert fit_polar_classes(np.array([0.1, 0.1, 0.2]), np.array([10.0, 10.0, 20.0]), 4).k == 2
    assert fit_polar_classes(np.zeros(0), np.zeros(0), 4).k == 0


def _noise_pair(shape=(200, 200), bands=4, seed=0):
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0.05, 0.3, size=(bands,) + shape).astype(np.float32)
    x2 = (x1 + rng.normal(0, 0.01, size=x1.shape)).astype(np.float32)
    return x1, x2


def test_pure_noise_gives_false_alarms_at_the_confidence_level():
    x1, x2 = _noise_pair()
    cfg = DetectionConfig(confidence=99.0, reference=(1, 0, 0, 0), n_classes=2, filter_size=1, min_area=1)
    sink = ArraySink(x1.shape[1:])
    det = detect_changes(ArraySource(x1, x2, np.ones(x1.shape[1:], bool)), cfg, sink)
    # 1 % of 40000 pixels: 400 expected under the model (binomial sd 20)
    assert 300 < det.changed_pixels < 500
    assert det.changed_pixels == int(((sink.classes > 0) & (sink.classes != NODATA_CLASS)).sum())


def test_engine_finds_planted_changes_whatever_the_strip_size():
    x1, x2 = _noise_pair()
    valid = np.ones(x1.shape[1:], bool)
    valid[:, :10] = False  # a no-data margin
    x2[:, 50:60, 50:62] += np.array([0.1, 0.1, 0.1, 0.0])[:, None, None]
    x2[:, 120:130, 140:150] += np.array([0.0, 0.0, 0.0, -0.15])[:, None, None]
    planted = np.zeros(valid.shape, bool)
    planted[50:60, 50:62] = planted[120:130, 140:150] = True
    cfg = DetectionConfig(confidence=99.99, reference=(1, 0, 0, 0), n_classes=2)
    sinks = []
    for strip_rows in (1024, 7):
        sink = ArraySink(valid.shape)
        detect_changes(ArraySource(x1, x2, valid), cfg, sink, strip_rows=strip_rows)
        sinks.append(sink)
    np.testing.assert_array_equal(sinks[0].classes, sinks[1].classes)
    np.testing.assert_array_equal(sinks[0].magnitude, sinks[1].magnitude)
    classes = sinks[0].classes
    changed = (classes > 0) & (classes != NODATA_CLASS)
    assert (classes[~valid] == NODATA_CLASS).all() and (sinks[0].magnitude[~valid] == cva.NODATA).all()
    # the 3x3 median filter takes one pixel off each corner of a rectangle
    assert changed[planted].sum() >= planted.sum() - 8
    assert not (changed & ~planted).any()
    # two directions, two classes: 90 degrees (band 4 only) vs arccos(1/sqrt(3)) = 54.7 degrees
    first = np.bincount(classes[50:60, 50:62][changed[50:60, 50:62]], minlength=3)
    second = np.bincount(classes[120:130, 140:150][changed[120:130, 140:150]], minlength=3)
    assert first[1] >= 0.95 * first.sum() and second[2] >= 0.95 * second.sum()
    assert np.median(sinks[0].angle[52:58, 52:60]) == pytest.approx(54.7356, abs=1.0)
    assert np.median(sinks[0].magnitude[52:58, 52:60]) == pytest.approx(0.1 * np.sqrt(3), rel=0.05)


def test_median3x3_equals_scipy():
    from scipy import ndimage

    rng = np.random.default_rng(11)
    a = rng.normal(size=(37, 53)).astype(np.float32)
    a[rng.random(a.shape) < 0.2] = 0.0  # ties
    np.testing.assert_array_equal(cva.median3x3(a), ndimage.median_filter(a, size=3, mode="nearest"))


def test_kmeans_is_deterministic_per_seed_and_handles_identical_samples():
    import warnings

    rng = np.random.default_rng(5)
    # two overlapping populations: the partition depends on the seeding, the seed fixes it
    rho = np.concatenate([rng.normal(0.1, 0.05, 2000), rng.normal(0.2, 0.05, 2000)])
    theta = np.concatenate([rng.normal(60, 30, 2000), rng.normal(100, 30, 2000)])
    runs = [fit_polar_classes(rho, theta, 6, seed=s) for s in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0].centroids, runs[1].centroids)
    np.testing.assert_array_equal(runs[0].assign(rho, theta), runs[1].assign(rho, theta))
    # every restart converged: another seed lands within a small fraction of the feature spread
    np.testing.assert_allclose(np.sort(runs[0].centroids[:, 1]), np.sort(runs[2].centroids[:, 1]), atol=15.0)
    # all changed pixels alike: one class, no warning about duplicated centroids
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = fit_polar_classes(np.full(500, 0.3), np.full(500, 45.0), 4)
    assert one.k == 1
    np.testing.assert_allclose(one.centroids, [[0.3, 45.0]])
    assert set(np.unique(one.assign(np.array([0.0, 1.0]), np.array([0.0, 180.0])))) == {1}
