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
