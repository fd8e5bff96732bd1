"""One torch thread per test process: the suite runs under pytest-xdist (two workers on two
cores), and OpenMP threads competing for the same cores slow small networks down many times."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory):
    """ONNX exports of the tests' PyTorch models go to a folder of this test run, not ~/.cache."""
    import os

    from components.s2_patch_classifier.onnx_export import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("onnx_cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous
