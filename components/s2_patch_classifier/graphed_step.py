"""The U-Net's training step (forward from the normalised, augmented batch, loss, backward, Adam)
on fixed buffers, replayed as one CUDA graph (:mod:`components.common.cuda_graphs`).

A ResNet-50 U-Net on 64-px patches at batch 16 does little arithmetic per step; on an H200 it
trained 613 patches/s, a step bound by the launches of its hundreds of kernels. Normalisation,
augmentation and the batch's gathering stay outside the graph (their draws come from the host);
the learning rate follows the same cosine schedule as the eager steps, written into a device
tensor before each step (its closed form: the scheduler's recursion would read the tensor back).
Autocast keeps no cast weights across steps inside a graph (``cache_enabled=False``).
"""

from __future__ import annotations

import math

import torch

from components.common.cuda_graphs import GraphedStep


def cosine_lr(base: float, step: int, total: int) -> float:
    """The learning rate of ``CosineAnnealingLR(T_max=total)`` (down to 0) at step ``step``."""
    return base * (1 + math.cos(math.pi * step / total)) / 2


def set_lr(optimiser: torch.optim.Optimizer, value: float) -> None:
    for group in optimiser.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


class UNetStep:
    """``step(xn, y, w)`` trains ``model`` on one batch and returns its (logits, loss), tensors
    that the next step overwrites."""

    def __init__(self, model, loss_fn, optimiser: torch.optim.Optimizer, device: torch.device, bf16: bool,
                 base_lr: float, total_steps: int):
        self.model, self.loss_fn, self.optimiser, self.device, self.bf16 = model, loss_fn, optimiser, device, bf16
        self.base_lr, self.total_steps, self.steps = base_lr, total_steps, 0
        self.xn = self.y = self.w = self.logits = self.loss = None
        self.run = GraphedStep(self._compute, optimiser, device, "U-Net training step")

    def __call__(self, xn: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None):
        if self.xn is None:  # the buffers, in the batch's layout (channels-last on CUDA)
            self.xn, self.y = torch.empty_like(xn), torch.empty_like(y)
            self.w = None if w is None else torch.empty_like(w)
        self.xn.copy_(xn)
        self.y.copy_(y)
        if w is not None:
            self.w.copy_(w)
        set_lr(self.optimiser, cosine_lr(self.base_lr, self.steps, self.total_steps))
        self.run()
        self.steps += 1
        return self.logits, self.loss

    def _compute(self) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False):
            logits = self.model.forward_normalised(self.xn).float()
            loss = self.loss_fn(logits, self.y, self.w)
        loss.backward()
        self.optimiser.step()
        self.logits, self.loss = logits, loss
