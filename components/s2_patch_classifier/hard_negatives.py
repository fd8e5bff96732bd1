"""Hard-negative sampling: background patches the network currently takes for objects are drawn
more often.

Piers, groynes and bridges fill few of the background patches, so uniform draws rarely show them,
and they become the false ships of an unseen port. Each training step leaves, for every patch it
drew, its hardness: the highest foreground probability on its background pixels (flips and
rotations do not change it). The background draws of the next epoch go a ``share`` in proportion
to the hardness last seen, the rest uniformly; a patch not drawn yet counts as hard (1). On the
sen2ships ports the false ships stayed (the README's lever table): it is offered, not a default.
"""

from __future__ import annotations

import numpy as np
import torch


def hardness(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per patch, the highest probability of a foreground class on its background (class 0) pixels;
    0 where it has none."""
    foreground = 1 - torch.softmax(logits.float(), 1)[:, 0]
    return torch.where(target == 0, foreground, 0.0).flatten(1).amax(1)


def mix(base: np.ndarray, background: np.ndarray, hard: np.ndarray, share: float) -> np.ndarray:
    """Sampling probabilities: ``base`` with its background mass spread ``share`` by ``hard`` and
    the rest uniformly over the background patches."""
    out = base.copy()
    if not background.any() or share <= 0:
        return out
    mass = base[background].sum()
    h = hard[background]
    by_hardness = h / h.sum() if h.sum() > 0 else np.full(len(h), 1.0 / len(h))
    out[background] = mass * ((1 - share) / len(h) + share * by_hardness)
    return out


class HardNegatives:
    """The hardness of each training patch, kept on the training device (no host sync per step)."""

    def __init__(self, background: np.ndarray, share: float, device: torch.device):
        self.background, self.share = background, share
        self.hard = torch.ones(len(background), device=device)

    def record(self, positions: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Positions (in the training index) of a batch's patches, their logits and targets."""
        self.hard[positions] = hardness(logits.detach(), target)

    def weights(self, base: np.ndarray) -> np.ndarray:
        return mix(base, self.background, self.hard.cpu().numpy().astype(np.float64), self.share)
