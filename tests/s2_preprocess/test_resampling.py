"""The integer-factor resampling kernels against hand-computed blocks."""

import numpy as np
import pytest

from components.s2_preprocess import resampling

A = np.array([[1, 2, 5, 0],
              [3, 4, 0, 0],
              [9, 9, 7, 8],
              [0, 9, 6, 5]], dtype=np.uint16)


@pytest.mark.parametrize("method, expected", [
    ("First", [[1, 5], [9, 7]]),
    ("Min", [[1, 5], [9, 5]]),
    ("Max", [[4, 5], [9, 8]]),
    ("Mean", [[2, 5], [9, 6]]),      # 2.5 rounds half to even; 6.5 -> 6
    ("Median", [[2, 5], [9, 6]]),
])
def test_downsample_ignores_nodata(method, expected):
    out = resampling.downsample(A, 2, method, nodata=0)
    assert out.dtype == A.dtype
    np.testing.assert_array_equal(out, expected)


def test_downsample_all_nodata_block_stays_nodata():
    a = np.zeros((4, 4), np.uint16)
    a[0, 0] = 7
    for method in ("Min", "Max", "Mean", "Median"):
        np.testing.assert_array_equal(resampling.downsample(a, 2, method), [[7, 0], [0, 0]])


def test_flag_methods_on_bits():
    # bit 0 set in 3 of 4 samples, bit 1 in 2 of 4 (a tie), bit 2 in 1 of 4
    block = np.array([[0b011, 0b001], [0b101, 0b010]], dtype=np.uint8)
    got = {m: int(resampling.downsample_flags(block, 2, m)[0, 0])
           for m in ("First", "FlagAnd", "FlagOr", "FlagMedianAnd", "FlagMedianOr")}
    assert got == {"First": 0b011, "FlagAnd": 0b000, "FlagOr": 0b111,
                   "FlagMedianAnd": 0b001, "FlagMedianOr": 0b011}


def test_flag_methods_on_bool_masks():
    m = np.array([[1, 1, 1, 0], [0, 1, 0, 0]], bool)
    assert resampling.downsample_flags(m, 2, "FlagAnd").tolist() == [[False, False]]
    assert resampling.downsample_flags(m, 2, "FlagOr").tolist() == [[True, True]]
    assert resampling.downsample_flags(m, 2, "FlagMedianAnd").tolist() == [[True, False]]
    assert resampling.downsample_flags(m, 2, "FlagMedianOr").tolist() == [[True, False]]

