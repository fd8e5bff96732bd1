"""Data augmentation on batches, on the training device: random flips and 90-degree rotations
(the same for image and labels), optionally a zoom about each sample's centre (``scale_jitter``),
and mild radiometric jitter for multispectral data: a gain per band (x U(0.9, 1.1)), an offset per
band (+ N(0, 0.05) in standard units) and pixel noise (N(0, 0.02)), applied after normalisation."""

from __future__ import annotations

import math

import torch

GAIN = 0.1
OFFSET = 0.05
NOISE = 0.02


def geometric(x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator):
    """Per sample: one of the 8 symmetries of the square. The samples are grouped by symmetry, so
    a batch costs at most 8 flips and rotations instead of one per sample (on a GPU each is a
    kernel launch); the result is the same as transforming the samples one by one."""
    n = x.shape[0]
    flips = torch.randint(0, 2, (n,), generator=generator).tolist()
    turns = torch.randint(0, 4, (n,), generator=generator).tolist()
    groups: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(flips, turns)):
        groups.setdefault(key, []).append(i)
    order = _index([i for members in groups.values() for i in members], x.device)
    parts = []
    for source in (x, y):
        if source is None:
            parts.append(None)
            continue
        sorted_ = source[order]
        pieces, start = [], 0
        for (flip, turn), members in groups.items():
            piece = sorted_[start:start + len(members)]
            start += len(members)
            if flip:
                piece = piece.flip(-1)
            if turn:
                piece = torch.rot90(piece, turn, (-2, -1))
            pieces.append(piece)
        grouped = torch.cat(pieces)
        parts.append(torch.empty_like(grouped).index_copy_(0, order, grouped))  # back to the batch order
    return parts[0], parts[1]


def _index(values: list[int], device: torch.device) -> torch.Tensor:
    return pinned_to(torch.tensor(values, dtype=torch.long), device)


def pinned_to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on ``device``; to a GPU through pinned memory, so the host does not wait."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def radiometric(x: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Gain/offset per sample and band plus noise, on normalised data (N, C, H, W). On a GPU the
    pixel noise is drawn there, from a generator seeded by ``generator`` (drawing it on the host
    and copying it would cost more than the training step)."""
    n, c = x.shape[:2]
    gain = 1 + strength * GAIN * (2 * torch.rand((n, c, 1, 1), generator=generator) - 1)
    offset = strength * OFFSET * torch.randn((n, c, 1, 1), generator=generator)
    if x.device.type == "cuda":
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        device_gen = torch.Generator(device=x.device).manual_seed(seed)
        noise = strength * NOISE * torch.randn(x.shape, generator=device_gen, device=x.device, dtype=x.dtype)
    else:
        noise = strength * NOISE * torch.randn(x.shape, generator=generator)
    return x * pinned_to(gain, x.device) + pinned_to(offset, x.device) + noise.to(x.device)


def zoom_factors(n: int, jitter: float, generator: torch.Generator) -> torch.Tensor:
    """Per sample a zoom factor drawn log-uniformly in [1 / (1 + jitter), 1 + jitter]."""
    return torch.exp((2 * torch.rand(n, generator=generator) - 1) * math.log1p(jitter))


def zoom_grid(factors: torch.Tensor, shape, device: torch.device) -> torch.Tensor:
    """The sampling grid that zooms samples of ``shape`` (N, C, H, W) about their centres by
    ``factors`` (> 1 enlarges)."""
    import torch.nn.functional as F

    theta = torch.zeros(len(factors), 2, 3, dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / factors
    return F.affine_grid(pinned_to(theta, device), list(shape), align_corners=False)


def zoomed(t: torch.Tensor, factors: torch.Tensor, mode: str, grid: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C, H, W) ``t`` zoomed about each sample's centre by its factor (> 1 enlarges); a zoom
    out fills the margin by reflection. ``grid``: :func:`zoom_grid` of the factors, when known."""
    import torch.nn.functional as F

    grid = zoom_grid(factors, t.shape, t.device) if grid is None else grid
    return F.grid_sample(t.float(), grid, mode=mode, padding_mode="reflection", align_corners=False).to(t.dtype)


def augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, weight: torch.Tensor | None = None,
            scale_jitter: float = 0.0):
    """Augmented (x, y, weight): per-pixel loss weights (or None) move with the pixels;
    ``scale_jitter`` > 0 zooms each sample (:func:`zoom_factors`), labels and weights by nearest
    neighbour (one grid for all three)."""
    x, y = geometric(x, y, generator) if weight is None else geometric(
        torch.cat([x, weight.unsqueeze(1).to(x.dtype)], 1), y, generator)
    c = x.shape[1] - (weight is not None)
    if scale_jitter:
        f = zoom_factors(len(x), scale_jitter, generator)
        grid = zoom_grid(f, x.shape, x.device)
        # labels and weights in one nearest-neighbour pass
        nearest = zoomed(torch.cat([y.unsqueeze(1).to(x.dtype), x[:, c:]], 1), f, "nearest", grid)
        y = nearest[:, 0].round().to(y.dtype)
        x = torch.cat([zoomed(x[:, :c], f, "bilinear", grid), nearest[:, 1:]], 1)
    return radiometric(x[:, :c], generator), y, (x[:, c] if weight is not None else None)
