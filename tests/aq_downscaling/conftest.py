"""One torch thread for these tests: tiny models gain nothing from more, and OpenMP threads that
spin-wait on a busy 2-core machine (pytest -n 2, CI) slow the training steps down many times."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
