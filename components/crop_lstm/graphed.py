"""The LSTM's training step replayed as one CUDA graph.

At the seed's batch 32 a step of the small LSTM is bound by the launches of its forward, backward
and Adam kernels (about 3 ms a step on an H200, 10.8k samples/s, where batch 1024 reaches 323k),
which a graph replays with one launch. A graph fixes its tensors' shapes and addresses, so the step
works on fixed buffers: the batch's indexes into the training set (resident on the device) and a
mask of its real samples. An epoch's last, shorter batch is padded (index 0, mask 0) and its loss
is the mean over its real samples, each class weighed as ``nn.CrossEntropyLoss`` weighs it, so it
trains as the short batch would. The epoch's loss and correct sums are added inside the step.

The first ``WARMUP`` steps run eagerly on a side stream (the allocator and cuDNN settle there, as
PyTorch's whole-network capture asks), then the step is captured and replayed for every later
step. Adam must be ``capturable`` (its step counts on the device) and keep a constant learning
rate: a captured step reads the rate it was captured with. Off CUDA the same step runs eagerly.
"""

from __future__ import annotations

import logging
import warnings

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

WARMUP = 3


class MaskedStep:
    """One training step on fixed buffers; ``step(idx)`` trains on the samples ``idx`` (at most
    ``batch_size`` of them) and adds their loss x count to ``total`` and their correct
    predictions to ``correct``."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None,
                 optimiser: torch.optim.Optimizer, batch_size: int, total: torch.Tensor, correct: torch.Tensor):
        self.model, self.x, self.y, self.weight, self.optimiser = model, x, y, weight, optimiser
        self.total, self.correct = total, correct
        self.idx = torch.zeros(batch_size, dtype=torch.int64, device=x.device)
        self.mask = torch.ones(batch_size, dtype=torch.float32, device=x.device)
        self.real = batch_size  # samples the mask holds as real
        self.capture = x.device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.steps = 0

    def __call__(self, idx: torch.Tensor) -> None:
        r = len(idx)
        self.idx[:r].copy_(idx)
        if r != self.real:  # a short batch, or a full one after it: the padding's mask
            self.idx[r:].zero_()
            self.mask[:r].fill_(1.0)
            self.mask[r:].zero_()
            self.real = r
        if self.graph is not None:
            self.graph.replay()
        elif self.capture and self.steps >= WARMUP:
            self._capture()
            self.graph.replay()  # capturing records the step without running it
        elif self.capture:
            self._warm_up()
        else:
            self._eager()
        self.steps += 1

    def _compute(self) -> None:
        xb = self.x.index_select(0, self.idx)
        yb = self.y.index_select(0, self.idx)
        logits = self.model(xb)
        # with class weights each term is weight[y] x its loss: the mean divides by their sum
        terms = F.cross_entropy(logits, yb, weight=self.weight, reduction="none")
        share = self.mask if self.weight is None else self.mask * self.weight.index_select(0, yb)
        loss = (terms * self.mask).sum() / share.sum()
        loss.backward()
        self.optimiser.step()
        self.total += loss.detach().double() * self.mask.sum(dtype=torch.float64)
        self.correct += ((logits.detach().argmax(1) == yb) & (self.mask > 0)).sum()

    def _eager(self) -> None:
        self.optimiser.zero_grad(set_to_none=True)
        self._compute()

    def _warm_up(self) -> None:
        side = torch.cuda.Stream(device=self.x.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")  # eager steps of a capturable Adam
            self._eager()
        torch.cuda.current_stream().wait_stream(side)

    def _capture(self) -> None:
        # the gradients are allocated inside the capture, so every replay writes (not adds) them
        self.optimiser.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._compute()
        log.info("training step of batch %d captured as a CUDA graph after %d eager steps", len(self.idx), self.steps)
