"""Synthetic Sentinel-1 products on the real sample geometry, written once per test session
(skipped when the shared sample data is absent)."""

from __future__ import annotations

import pytest

from tests.conftest import sample
from tests.fixtures import s1_products


@pytest.fixture(scope="session")
def real_grd():
    return next(sample(s1_products.GRD_SAMPLE).glob("*.SAFE"))


@pytest.fixture(scope="session")
def real_slc():
    return next(sample(s1_products.SLC_SAMPLE).glob("*.SAFE"))


@pytest.fixture(scope="session")
def grd_product(real_grd, tmp_path_factory):
    """A 400 x 500 GRD crop over Rome (VV + VH)."""
    return s1_products.write_grd(tmp_path_factory.mktemp("grd"), source=real_grd)


@pytest.fixture(scope="session")
def slc_product(real_slc, tmp_path_factory):
    """Two bursts x 400 samples of IW1 VV."""
    return s1_products.write_slc(tmp_path_factory.mktemp("slc"), source=real_slc)


@pytest.fixture(scope="session")
def dem_rome():
    return next(sample("dem-rome-30m").glob("*.tif"))


@pytest.fixture(scope="session")
def grd_image(real_grd, tmp_path_factory):
    """The VV image of the real GRD (its parsed annotations are cached for the session)."""
    from components.s1_preprocess.product import open_product

    return open_product(real_grd, tmp_path_factory.mktemp("real")).image("IW", "VV")


@pytest.fixture(scope="session")
def slc_image(real_slc, tmp_path_factory):
    from components.s1_preprocess.product import open_product

    return open_product(real_slc, tmp_path_factory.mktemp("real")).image("IW1", "VV")
