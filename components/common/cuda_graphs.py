"""A training step replayed as one CUDA graph.

A small network's step (forward, backward, Adam) on a GPU is bound by the launches of its
kernels and the Python that issues them, not by arithmetic; a graph replays all of them with one
launch. A graph fixes its tensors' shapes and addresses, so the step must read its inputs from
buffers the caller fills before each call and leave its outputs in tensors it keeps; the
optimiser must be ``capturable`` (its step counts on the device) and any learning rate it reads
a device tensor that the caller changes in place.

The first ``WARMUP`` calls run eagerly on a side stream (the allocator and cuDNN's choices settle
there, as PyTorch's whole-network capture asks), the next is captured once and every call after
it replays the graph. The gradients are set to None before each eager call and before the capture,
so that the captured backward allocates them and each replay writes (not adds) them. Off CUDA the
step always runs eagerly.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable

import torch

log = logging.getLogger(__name__)

WARMUP = 3


class GraphedStep:
    """``step()`` runs ``compute`` as described above; ``optimiser``'s gradients are cleared
    before each eager run and before the capture."""

    def __init__(self, compute: Callable[[], None], optimiser: torch.optim.Optimizer, device: torch.device,
                 what: str = "training step"):
        self.compute, self.optimiser, self.what = compute, optimiser, what
        self.capture = device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.capture and self.calls >= WARMUP:
            self._capture()
            self.graph.replay()  # capturing records the step without running it
        elif self.capture:
            self._warm_up()
        else:
            self._eager()
        self.calls += 1

    def _eager(self) -> None:
        self.optimiser.zero_grad(set_to_none=True)
        self.compute()

    def _warm_up(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")  # eager steps of a capturable optimiser
            self._eager()
        torch.cuda.current_stream().wait_stream(side)

    def _capture(self) -> None:
        self.optimiser.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.compute()
        log.info("%s captured as a CUDA graph after %d eager steps", self.what, self.calls)
