"""The synthetic products keep the real geometry and LUTs: a crop seen through the readers
equals the real product at the shifted lines and samples."""

from __future__ import annotations

import numpy as np

from components.s1_preprocess.product import open_product
from components.s1_preprocess.radiometry import NoiseModel, calibration_lut
from components.s1_preprocess.service import gcp_model
from tests.fixtures import s1_products


def test_grd_crop_matches_the_real_product(grd_product, grd_image, tmp_path):
    crop = open_product(grd_product, tmp_path).image("IW", "VV")
    l0, p0 = 7900, 21900
    assert (crop.lines, crop.samples) == (400, 500)
    r = np.array([0.0, 123.4, 399.0])
    c = np.array([0.0, 250.5, 499.0])
    a = gcp_model(crop)[0].forward(r, c)
    b = gcp_model(grd_image)[0].forward(r + l0, c + p0)
    assert np.allclose(a[0], b[0], atol=1e-9) and np.allclose(a[1], b[1], atol=1e-9)
    lut_a = calibration_lut(crop, "Sigma").rows(r)[:, c.astype(int)]
    lut_b = calibration_lut(grd_image, "Sigma").rows(r + l0)[:, (c + p0).astype(int)]
    np.testing.assert_allclose(lut_a, lut_b, rtol=1e-6)
    n_a = NoiseModel(crop, 3.4).rows(r, 0, crop.samples)[:, c.astype(int)]
    n_b = NoiseModel(grd_image, 3.4).rows(r + l0, 0, grd_image.samples)[:, (c + p0).astype(int)]
    np.testing.assert_allclose(n_a, n_b, rtol=1e-6)
    t = (crop.first_line_time - grd_image.first_line_time) / np.timedelta64(1, "s")
    assert abs(t - l0 * grd_image.azimuth_time_interval) < 1e-5


def test_slc_crop_keeps_bursts_and_range_time(slc_product, slc_image, tmp_path):
    crop = open_product(slc_product, tmp_path).image("IW1", "VV")
    assert len(crop.bursts) == 2 and crop.lines == 2 * slc_image.lines_per_burst
    assert crop.bursts[0].azimuth_time == slc_image.bursts[3].azimuth_time
    assert abs(crop.slant_range_time - (slc_image.slant_range_time + 9000 / slc_image.range_sampling_rate)) < 1e-12
    fv = slc_image.bursts[3].first_valid_sample
    assert np.array_equal(crop.bursts[0].first_valid_sample >= 0, fv >= 0)
    shifted = s1_products.write_slc(tmp_path / "later", source=slc_image.product.path, shift_days=12)
    later = open_product(shifted, tmp_path / "o").image("IW1", "VV")
    dt = (later.first_line_time - crop.first_line_time) / np.timedelta64(1, "D")
    assert abs(dt - 12) < 1e-9
