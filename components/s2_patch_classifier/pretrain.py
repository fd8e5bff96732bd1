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

The views are made for the whole batch at once on the training device (one grid_sample for the
crops, two grouped convolutions for the blurs, whatever the batch size), and on CUDA the step
never waits for the GPU: the patches are held in GPU memory when they fit (as in training), the
loss is summed there and read once per epoch, the key encoder's moving average is one fused
update, Adam is fused, and the encoders run under bf16 autocast (projections normalised in fp32).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from components.common.optimisers import adam

from . import augment as aug
from .model import Normalise, ResNetEncoder
from .patches import PatchSet
from .train import Batches, autocast

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
        return F.normalize(self.head(f).float(), dim=1)  # fp32 under autocast: the logits divide by 0.2


MAX_BLUR_RADIUS = 4  # the largest sigma (2.0) reaches 2 sigma = 4 px


def blur_kernels(sigma: torch.Tensor) -> torch.Tensor:
    """(N, 2R+1) separable Gaussian kernels, each cut at its own radius round(2 sigma) (at least 1);
    sigma 0 gives the identity."""
    t = torch.arange(-MAX_BLUR_RADIUS, MAX_BLUR_RADIUS + 1, dtype=torch.float32)
    radius = torch.clamp(torch.round(2 * sigma), min=1)[:, None]
    k = torch.exp(-t ** 2 / (2 * sigma.clamp_min(1e-6)[:, None] ** 2)) * (t.abs() <= radius)
    return k / k.sum(1, keepdim=True)


def blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each sample blurred with its own kernel (``kernels`` (N, 2R+1) on x's device), two grouped
    convolutions for the whole batch."""
    n, c, h, w = x.shape
    r = MAX_BLUR_RADIUS
    k = kernels.to(x.dtype).repeat_interleave(c, 0)  # one kernel per (sample, band) group
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def crop_boxes(n: int, p: int, gen: torch.Generator) -> torch.Tensor:
    """(N, 4) random resized crops (y0, x0, h, w) in pixels: 30-100 % of the area, aspect 3/4-4/3."""
    scale = 0.3 + 0.7 * torch.rand(n, generator=gen)
    ratio = torch.exp((torch.rand(n, generator=gen) - 0.5) * 2 * math.log(4 / 3))
    area = scale * p * p
    h = torch.round(torch.sqrt(area / ratio).clamp(4, p))
    w = torch.round(torch.sqrt(area * ratio).clamp(4, p))
    y0 = torch.floor(torch.rand(n, generator=gen) * (p - h + 1))
    x0 = torch.floor(torch.rand(n, generator=gen) * (p - w + 1))
    return torch.stack([y0, x0, h, w], 1)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Each sample's box resampled to the full patch (bilinear), one grid_sample for the batch: the
    sample points of ``F.interpolate`` on the cropped pixels (``boxes`` on x's device)."""
    n, _, p, _ = x.shape
    y0, x0, h, w = boxes.to(x.dtype).unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = w / p, (2 * x0 + w) / p - 1
    theta[:, 1, 1], theta[:, 1, 2] = h / p, (2 * y0 + h) / p - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One augmented view of a normalised batch (N, C, P, P), on x's device: a few batched
    operations whatever the batch size (the random draws come from ``gen`` on the host and reach
    a GPU through pinned memory, so the host never waits for it)."""
    n, c, p, _ = x.shape
    boxes = crop_boxes(n, p, gen)
    sigma = torch.where(torch.rand(n, generator=gen) < 0.5, 0.1 + 1.9 * torch.rand(n, generator=gen),
                        torch.zeros(n))
    kernels = blur_kernels(sigma)
    dropped = torch.zeros(n, c, 1, 1, dtype=torch.bool)
    if c > 1:  # spectral dropout: one band of a fifth of the samples set to its mean
        band = torch.randint(0, c, (n,), generator=gen)
        dropped[torch.arange(n), band] = (torch.rand(n, generator=gen) < 0.2)[:, None, None]
    v = blur(crop_resize(x, aug.pinned_to(boxes, x.device)), aug.pinned_to(kernels, x.device))
    v = torch.where(aug.pinned_to(dropped, x.device), v.mean((2, 3), keepdim=True), v)
    v, _ = aug.geometric(v, None, gen)
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
    query_params, key_params = list(query.parameters()), list(key.parameters())
    queue_size = int(min(MAX_QUEUE, max(batch_size, 2 ** int(math.log2(max(n, 2))))))
    queue = F.normalize(torch.randn(queue_size, PROJECTION, device=device), dim=1)
    queue_ptr = 0
    optimiser = adam(query.parameters(), lr, device)
    batch_size = min(batch_size, n) if n >= 2 else batch_size
    steps = max(1, n // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps)
    batches = Batches(PatchSet(Path("."), {}, images, None), device)  # as training holds its patches
    history = []
    started = time.perf_counter()
    log.info("MoCo v2 pre-training of %s/%d on %s: %d patches, queue %d, %d steps per epoch%s",
             encoder, width, device, n, queue_size, steps, " (patches held in GPU memory)" if batches.resident else "")
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        query.train()
        key.train()
        order = rng.permutation(n)
        total = torch.zeros((), dtype=torch.float64, device=device)  # read once per epoch: no wait per step
        for s in range(steps):
            idx = np.sort(order[s * batch_size:(s + 1) * batch_size])
            if len(idx) < 2:
                idx = np.sort(rng.choice(n, 2, replace=n < 2))
            x = norm(batches(idx, labels=False)[0])
            xq, xk = view(x, gen), view(x, gen)
            with autocast(device):
                q = query(xq)
                with torch.no_grad():
                    torch._foreach_mul_(key_params, MOMENTUM)
                    torch._foreach_add_(key_params, query_params, alpha=1 - MOMENTUM)
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
            total += loss.detach().double()
        history.append({"epoch": epoch, "loss": round(float(total) / steps, 6),
                        "seconds": round(time.perf_counter() - t0, 2)})
        log.info("pretrain epoch %d/%d: InfoNCE %.4f, %.1f s", epoch, epochs, history[-1]["loss"], history[-1]["seconds"])
        if max_seconds and time.perf_counter() - started > max_seconds:
            log.info("time budget of %.0f s reached after epoch %d", max_seconds, epoch)
            break
    del batches
    return query.encoder.cpu().eval(), history


def _shuffled_keys(key: Embedder, xk: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = len(xk)
    perm = aug.pinned_to(torch.randperm(n, generator=gen), xk.device)
    xs = xk[perm]
    if n >= 4:
        half = n // 2
        ks = torch.cat([key(xs[:half]), key(xs[half:])])
    else:
        ks = key(xs)
    out = torch.empty_like(ks)
    out[perm] = ks
    return out
