"""The LSTM's training step on fixed buffers, replayed as one CUDA graph
(:mod:`components.common.cuda_graphs`).

At the seed's batch 32 a step of the small LSTM is bound by kernel launches (about 3 ms a step on
an H200, 10.8k samples/s, where batch 1024 reaches 323k). The step reads the batch's indexes into
the training set (resident on the device) and a mask of its real samples from fixed buffers. An
epoch's last, shorter batch is padded (index 0, mask 0) and its loss is the mean over its real
samples, each class weighed as ``nn.CrossEntropyLoss`` weighs it, so it trains as the short batch
would. The epoch's loss and correct sums are added inside the step. Adam keeps a constant
learning rate here, which a captured step may read as a number.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.common.cuda_graphs import GraphedStep


class MaskedStep:
    """``step(idx)`` trains on the samples ``idx`` (at most ``batch_size`` of them) and adds their
    loss x count to ``total`` and their correct predictions to ``correct``."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None,
                 optimiser: torch.optim.Optimizer, batch_size: int, total: torch.Tensor, correct: torch.Tensor):
        self.model, self.x, self.y, self.weight, self.optimiser = model, x, y, weight, optimiser
        self.total, self.correct = total, correct
        self.idx = torch.zeros(batch_size, dtype=torch.int64, device=x.device)
        self.mask = torch.ones(batch_size, dtype=torch.float32, device=x.device)
        self.real = batch_size  # samples the mask holds as real
        self.run = GraphedStep(self._compute, optimiser, x.device, f"LSTM training step of batch {batch_size}")

    def __call__(self, idx: torch.Tensor) -> None:
        r = len(idx)
        self.idx[:r].copy_(idx)
        if r != self.real:  # a short batch, or a full one after it: the padding's mask
            self.idx[r:].zero_()
            self.mask[:r].fill_(1.0)
            self.mask[r:].zero_()
            self.real = r
        self.run()

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
