import pytest
import torch

from components.common.optimisers import adam


def _param(device: str) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2, device=device))]


def test_the_cpu_keeps_plain_adam_whatever_the_step():
    for graphed in (False, True):
        opt = adam(_param("cpu"), 1e-3, torch.device("cpu"), (0.5, 0.9), graphed=graphed, rate_on_device=True)
        assert not opt.defaults.get("fused") and not opt.defaults["capturable"]
        assert opt.defaults["lr"] == 1e-3 and opt.defaults["betas"] == (0.5, 0.9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fuses_adam_and_a_graphed_step_captures_it():
    cuda = torch.device("cuda")
    plain = adam(_param("cuda"), 1e-3, cuda)
    assert plain.defaults["fused"] and not plain.defaults["capturable"]
    constant = adam(_param("cuda"), 1e-3, cuda, graphed=True)
    assert constant.defaults["capturable"] and constant.defaults["lr"] == 1e-3
    scheduled = adam(_param("cuda"), 1e-3, cuda, graphed=True, rate_on_device=True)
    assert scheduled.defaults["lr"].device.type == "cuda"
