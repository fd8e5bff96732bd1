"""Training losses: cross-entropy and the focal loss of Lin et al. (2017), both ignoring the
label 255 (no data) and averaged over the counted pixels."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .data import IGNORE

FOCAL_GAMMA = 2.0


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target, ignore_index=IGNORE)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """``-(1 - p_t)^gamma log p_t``: easy pixels (most of the background) weigh little, so rare
    classes such as ships are not swamped."""
    valid = target != IGNORE
    logp = F.log_softmax(logits.float(), dim=1)
    t = torch.where(valid, target, torch.zeros_like(target)).long()
    logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - logp_t.exp()).clamp(min=0) ** gamma) * logp_t
    return (loss * valid).sum() / valid.sum().clamp(min=1)


LOSSES = {"cross_entropy": cross_entropy, "focal_loss": focal_loss}
