"""Self-supervised pre-training of the ResNet encoder on unlabelled patches: MoCo v2.

The seed (section 3.2.1.3) pre-trains the ResNet-50 backbone with self-supervised learning after
Ciocarlan & Stoian (2021, Remote Sensing 13, 4255), who used MoCo on Sentinel-2 for ship
detection. We implement MoCo v2 (He et al. 2020; Chen et al. 2020):

- two augmented views of each patch go through a *query* encoder and a *key* encoder (an
  exponential moving average of the query encoder, momentum 0.99), each followed by global
  average pooling and a 2-layer MLP projection to 128 dimensions, L2-normalised;
- the InfoNCE loss (temperature 0.2) makes the query match its own key against a queue of keys
  from earlier batches (up to 4096 negatives, fewer for small data sets), so small batches
  (2-64, the service's range) still see many negatives;
- batch-norm statistics are not shared between query and keys: the keys are computed on a
  shuffled batch in two halves (the single-device version of MoCo's shuffling BN), so the
  network cannot use batch statistics to find the positive.

Augmentations suited to multispectral data (no colour-space jitter, which assumes RGB): random
resized crop (30-100 % of the area, bilinear), the 8 flips/rotations, per-band gain (x0.8-1.2)
and offset (N(0, 0.1) standard units), Gaussian blur (p = 0.5), pixel noise, and spectral
dropout (one band set to its mean, p = 0.2).

Only the encoder (stem + 4 stages) is kept; ``--pretrained true`` loads it into the U-Net. The
checkpoint also keeps the band order and the normalisation statistics, which training then uses
so that the encoder sees data scaled as during pre-training.
"""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import augment as aug
from .model import Normalise, ResNetEncoder

log = logging.getLogger(__name__)

MOMENTUM = 0.99
TEMPERATURE = 0.2
PROJECTION = 128
MAX_QUEUE = 4096


class Embedder(nn.Module):
    """Encoder + global pooling + MLP projection head."""

    def __init__(self, in_channels: int, encoder: str, width: int):
        super().__init__()
        self.encoder = ResNetEncoder(in_channels, encoder, width)
        c = self.encoder.channels[-1]
        self.head = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, PROJECTION))

    def forward(self, x):
        f = self.encoder(x)[-1].mean(dim=(2, 3))
        return F.normalize(self.head(f), dim=1)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(round(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One augmented view of a normalised batch (N, C, P, P)."""
    n, c, p, _ = x.shape
    out = []
    scale = 0.3 + 0.7 * torch.rand(n, generator=gen)
    ratio = torch.exp((torch.rand(n, generator=gen) - 0.5) * 2 * math.log(4 / 3))
    for i in range(n):
        area = scale[i].item() * p * p
        h = int(round(min(p, max(4, math.sqrt(area / ratio[i].item())))))
        w = int(round(min(p, max(4, math.sqrt(area * ratio[i].item())))))
        y0 = int(torch.randint(0, p - h + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, p - w + 1, (1,), generator=gen))
        crop = x[i:i + 1, :, y0:y0 + h, x0:x0 + w]
        xi = F.interpolate(crop, size=(p, p), mode="bilinear", align_corners=False)
        if torch.rand(1, generator=gen) < 0.5:
            xi = _gaussian_blur(xi, 0.1 + 1.9 * torch.rand(1, generator=gen).item())
        if c > 1 and torch.rand(1, generator=gen) < 0.2:
            b = int(torch.randint(0, c, (1,), generator=gen))
            xi[:, b] = xi[:, b].mean()
        out.append(xi)
    v, _ = aug.geometric(torch.cat(out), None, gen)
    return aug.radiometric(v, gen, strength=2.0)


def pretrain(images: np.ndarray, stats: dict, *, encoder: str, width: int, epochs: int, batch_size: int, lr: float,
             device: torch.device, seed: int = 0, max_seconds: float | None = None) -> tuple[ResNetEncoder, list]:
    """MoCo v2 on ``images`` (N, C, P, P raw values); the trained encoder and the loss history."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n, c = images.shape[:2]
    norm = Normalise(c)
    norm.set_stats(stats["low"], stats["high"], stats["mean"], stats["std"])
    norm = norm.to(device)
    query = Embedder(c, encoder, width).to(device)
    key = copy.deepcopy(query).to(device)
    for p in key.parameters():
        p.requires_grad_(False)
    queue_size = int(min(MAX_QUEUE, max(batch_size, 2 ** int(math.log2(max(n, 2))))))
    queue = F.normalize(torch.randn(queue_size, PROJECTION, device=device), dim=1)
    queue_ptr = 0
    optimiser = torch.optim.Adam(query.parameters(), lr=lr)
    batch_size = min(batch_size, n) if n >= 2 else batch_size
    steps = max(1, n // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps)
    history = []
    started = time.perf_counter()
    log.info("MoCo v2 pre-training of %s/%d on %s: %d patches, queue %d, %d steps per epoch",
             encoder, width, device, n, queue_size, steps)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        query.train()
        key.train()
        order = rng.permutation(n)
        total = 0.0
        for s in range(steps):
            idx = np.sort(order[s * batch_size:(s + 1) * batch_size])
            if len(idx) < 2:
                idx = np.sort(rng.choice(n, 2, replace=n < 2))
            x = norm(torch.from_numpy(np.ascontiguousarray(images[idx])).to(device)).cpu()
            xq, xk = view(x, gen).to(device), view(x, gen).to(device)
            q = query(xq)
            with torch.no_grad():
                for pk, pq in zip(key.parameters(), query.parameters()):
                    pk.mul_(MOMENTUM).add_(pq.detach(), alpha=1 - MOMENTUM)
                k = _shuffled_keys(key, xk, gen)
            pos = (q * k).sum(1, keepdim=True)
            neg = q @ queue.t()
            logits = torch.cat([pos, neg], 1) / TEMPERATURE
            loss = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                m = len(k)
                end = queue_ptr + m
                if end <= queue_size:
                    queue[queue_ptr:end] = k
                else:
                    queue[queue_ptr:] = k[:queue_size - queue_ptr]
                    queue[:end - queue_size] = k[queue_size - queue_ptr:]
                queue_ptr = end % queue_size
            total += loss.item()
        history.append({"epoch": epoch, "loss": round(total / steps, 6), "seconds": round(time.perf_counter() - t0, 2)})
        log.info("pretrain epoch %d/%d: InfoNCE %.4f, %.1f s", epoch, epochs, history[-1]["loss"], history[-1]["seconds"])
        if max_seconds and time.perf_counter() - started > max_seconds:
            log.info("time budget of %.0f s reached after epoch %d", max_seconds, epoch)
            break
    return query.encoder.cpu().eval(), history


def _shuffled_keys(key: Embedder, xk: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = len(xk)
    perm = torch.randperm(n, generator=gen).to(xk.device)
    xs = xk[perm]
    if n >= 4:
        half = n // 2
        ks = torch.cat([key(xs[:half]), key(xs[half:])])
    else:
        ks = key(xs)
    out = torch.empty_like(ks)
    out[perm] = ks
    return out
