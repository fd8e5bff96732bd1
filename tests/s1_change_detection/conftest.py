"""A synthetic SLC pair on the real IW1 geometry: date 2 twelve days later, speckle correlated
with date 1 (coherence 0.9, 0.2 and +6 dB in the change patch)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from tests.conftest import sample
from tests.fixtures import s1_products


@pytest.fixture(scope="session")
def real_slc():
    return next(sample(s1_products.SLC_SAMPLE).glob("*.SAFE"))


@pytest.fixture(scope="session")
def slc_pair(real_slc, tmp_path_factory):
    # 300 samples: wide enough for the amplitude refinement's 256-sample patches
    root = tmp_path_factory.mktemp("pair")
    a = s1_products.write_slc(root / "a", source=real_slc, samples=(9000, 300))
    b = s1_products.write_slc(root / "b", source=real_slc, samples=(9000, 300), date=1, shift_days=12)
    return a, b


@pytest.fixture(scope="session")
def shifted_pair(real_slc, tmp_path_factory):
    """The pair with the secondary's pixels 2 lines and 3 samples further than its annotation says."""
    root = tmp_path_factory.mktemp("shifted")
    a = s1_products.write_slc(root / "a", source=real_slc, samples=(9000, 300))
    b = s1_products.write_slc(root / "b", source=real_slc, samples=(9000, 300), date=1, shift_days=12)
    tiff = next((b / "measurement").glob("*-iw1-slc-vv-*.tiff"))
    with rasterio.open(tiff, "r+") as ds:
        ds.write(np.roll(ds.read(1), (2, 3), axis=(0, 1)), 1)
    return a, b


@pytest.fixture(scope="session")
def tops_pair(real_slc, tmp_path_factory):
    """A coherent IW pair with the real TOPS timing and ramps, the secondary 0.4 line off."""
    from tests.s1_change_detection import tops_pair as sim

    return sim.write_pair(tmp_path_factory.mktemp("tops"), real_slc, offset_lines=0.4)


@pytest.fixture(scope="session")
def baseline_pair(real_slc, tmp_path_factory):
    """150 m perpendicular baseline over sloped terrain (with its DEM), the secondary 0.25 line
    off by its annotation and 0.02 line more that only ESD can find."""
    from tests.s1_change_detection import tops_pair as sim

    return sim.write_pair(tmp_path_factory.mktemp("baseline"), real_slc, offset_lines=0.25, baseline_m=150.0,
                          hidden_shift=0.02, dem=True)
