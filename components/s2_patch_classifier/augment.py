"""Data augmentation on batches, on the training device: random flips and 90-degree rotations
(the same for image and labels), and mild radiometric jitter for multispectral data: a gain per
band (x U(0.9, 1.1)), an offset per band (+ N(0, 0.05) in standard units) and pixel noise
(N(0, 0.02)), applied after normalisation."""

from __future__ import annotations

import torch

GAIN = 0.1
OFFSET = 0.05
NOISE = 0.02


def geometric(x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator):
    """Per sample: one of the 8 symmetries of the square."""
    n = x.shape[0]
    flips = torch.randint(0, 2, (n,), generator=generator).tolist()
    turns = torch.randint(0, 4, (n,), generator=generator).tolist()
    xs, ys = [], []
    for i in range(n):
        xi = x[i]
        yi = None if y is None else y[i]
        if flips[i]:
            xi = xi.flip(-1)
            yi = None if yi is None else yi.flip(-1)
        if turns[i]:
            xi = torch.rot90(xi, turns[i], (-2, -1))
            yi = None if yi is None else torch.rot90(yi, turns[i], (-2, -1))
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), None if y is None else torch.stack(ys)


def radiometric(x: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Gain/offset per sample and band plus noise, on normalised data (N, C, H, W)."""
    n, c = x.shape[:2]
    gain = 1 + strength * GAIN * (2 * torch.rand((n, c, 1, 1), generator=generator) - 1)
    offset = strength * OFFSET * torch.randn((n, c, 1, 1), generator=generator)
    noise = strength * NOISE * torch.randn(x.shape, generator=generator)
    return x * gain.to(x.device) + offset.to(x.device) + noise.to(x.device)


def augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    x, y = geometric(x, y, generator)
    return radiometric(x, generator), y
