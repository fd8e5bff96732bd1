"""A synthetic SLC pair on the real IW1 geometry: date 2 twelve days later, speckle correlated
with date 1 (coherence 0.9, 0.2 and +6 dB in the change patch)."""

from __future__ import annotations

import pytest

from tests.conftest import sample
from tests.fixtures import s1_products


@pytest.fixture(scope="session")
def real_slc():
    return next(sample(s1_products.SLC_SAMPLE).glob("*.SAFE"))


@pytest.fixture(scope="session")
def slc_pair(real_slc, tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    a = s1_products.write_slc(root / "a", source=real_slc, samples=(9000, 240))
    b = s1_products.write_slc(root / "b", source=real_slc, samples=(9000, 240), date=1, shift_days=12)
    return a, b
