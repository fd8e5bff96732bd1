"""The crop-type chain on small synthetic data in the real formats, built once per session:
TimeSen2Crop archive -> timesen2crop -> train_lstm (a real, tiny training run) and a REFBOA/LAI
time series of a tile -> monthlycomposite (tests/fixtures/crop_chain.py)."""

from __future__ import annotations

import pytest

from tests.fixtures.crop_chain import CLASSES, TRAIN_ARGS, Chain, build_chain  # noqa: F401


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Chain:
    return build_chain(tmp_path_factory.mktemp("crop_chain"))
