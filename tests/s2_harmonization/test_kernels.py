"""The masked median and the composite of one block against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.medians import masked_median
from components.s2_harmonization.kernels import composite_block, to_uint16


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_masked_median_equals_nanmedian(n):
    rng = np.random.default_rng(n)
    values = rng.integers(1, 10000, (3, 7, 9, n)).astype(np.float32)
    valid = rng.random(values.shape) < 0.6
    median, count = masked_median(values, valid, axis=-1)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if (~valid).all(axis=-1).any() else _nothing():
        expected = np.nanmedian(np.where(valid, values, np.nan), axis=-1)
    np.testing.assert_array_equal(np.isnan(median), np.isnan(expected))
    np.testing.assert_allclose(median[~np.isnan(expected)], expected[~np.isnan(expected)])
    np.testing.assert_array_equal(count, valid.sum(axis=-1))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_rounding_and_nodata():
    out = to_uint16(np.array([np.nan, 0.2, 1.5, 2.5, 70000.0], np.float32))
    assert out.tolist() == [0, 1, 2, 3, 65535]


def test_composite_block_leaves_out_cloudy_samples():
    # one pixel, one band, four acquisitions: LAI 0 (cloud) on the brightest two
    boa = np.array([[[[100, 300, 9000, 8000]]]], np.float32)
    lai = np.array([[[1.2, 0.8, 0.0, 0.0]]], np.float32)
    comp, count = composite_block(boa, lai)
    assert comp.tolist() == [[[200]]] and count.tolist() == [[2]]
    comp, count = composite_block(boa, np.zeros_like(lai))
    assert comp.tolist() == [[[0]]] and count.tolist() == [[0]]
    nodata = np.array([[[True, False, False, False]]])
    comp, _ = composite_block(boa, lai, boa_nodata=nodata)
    assert comp.tolist() == [[[300]]]
    lai_nan = lai.copy()
    lai_nan[0, 0, 1] = np.nan
    comp, _ = composite_block(boa, lai_nan)
    assert comp.tolist() == [[[100]]]
