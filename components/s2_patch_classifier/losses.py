"""Training losses: cross-entropy, the focal loss of Lin et al. (2017), and the focal loss plus
a soft Dice term for small objects, all ignoring the label 255 (no data). A ``weight`` per pixel
(``gap_weights``) scales the pixel terms; the mean stays over the valid pixels."""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F

from .data import IGNORE

FOCAL_GAMMA = 2.0


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    if weight is None:
        return F.cross_entropy(logits, target, ignore_index=IGNORE)
    loss = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    valid = target != IGNORE
    return (loss * weight).sum() / valid.sum().clamp(min=1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
               gamma: float = FOCAL_GAMMA, alpha: float = 0.0) -> torch.Tensor:
    """``-alpha_t (1 - p_t)^gamma log p_t``: easy pixels (most of the background) weigh little, so
    rare classes such as ships are not swamped. ``alpha`` (0: off) weighs the foreground classes'
    pixels, ``1 - alpha`` the background's (Lin et al.'s balanced form)."""
    valid = target != IGNORE
    logp = F.log_softmax(logits.float(), dim=1)
    t = torch.where(valid, target, torch.zeros_like(target)).long()
    logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - logp_t.exp()).clamp(min=0) ** gamma) * logp_t * valid
    if alpha:
        loss = loss * torch.where(t > 0, alpha, 1.0 - alpha)
    if weight is not None:
        loss = loss * weight
    return loss.sum() / valid.sum().clamp(min=1)


def soft_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - 2|P∩T| / (|P| + |T|)`` of the foreground classes' probabilities over the batch, mean
    over classes (+1 smoothing): a ship of 40 pixels weighs as much as the sea around it, and
    confident foreground is rewarded, where the focal loss alone leaves small objects below 0.5."""
    valid = (target != IGNORE).unsqueeze(1)
    k = logits.shape[1]
    t = torch.where(valid.squeeze(1), target, torch.zeros_like(target)).long()
    truth = F.one_hot(t, k).permute(0, 3, 1, 2)[:, 1:].float() * valid
    prob = F.softmax(logits.float(), dim=1)[:, 1:] * valid
    inter = (prob * truth).sum((0, 2, 3))
    dice = (2 * inter + 1) / (prob.sum((0, 2, 3)) + truth.sum((0, 2, 3)) + 1)
    return 1 - dice.mean()


def focal_dice(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
               alpha: float = 0.0) -> torch.Tensor:
    return focal_loss(logits, target, weight, alpha=alpha) + soft_dice(logits, target)


LOSSES = {"cross_entropy": cross_entropy, "focal_loss": focal_loss, "focal_dice": focal_dice}


def loss_function(criterion: str, focal_alpha: float = 0.0):
    """The training loss ``criterion``, its focal term balanced by ``focal_alpha`` (0: unweighted;
    only for the FOCAL_CRITERIA, which ``train`` checks)."""
    return functools.partial(LOSSES[criterion], alpha=focal_alpha) if focal_alpha else LOSSES[criterion]
