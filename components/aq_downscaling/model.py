"""The SRGAN-style generator (with a noise input: each draw is an ensemble member) and the
Wasserstein critic.

Generator: low-resolution inputs and noise -> convolution -> residual blocks (Ledig et al. 2016)
at low resolution -> ``log2(factor)`` x2 stages (nearest upsampling, convolutions) to the
high-resolution grid. The static high-resolution fields (averaged to each stage's resolution) and
the noise (one tensor at high resolution, averaged and rescaled to unit variance at each stage)
are concatenated at every stage, so that members can differ at every scale. The output is a
correction added to the bilinearly upsampled low-resolution field of the same variable (when the
variable is an input too), all in normalised units.

Critic: the high-resolution field with the static fields and the upsampled low-resolution inputs
-> strided convolutions down to the low-resolution grid -> concatenated with the low-resolution
inputs -> convolutions -> mean -> one score. No normalisation layers (gradient penalty).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _act():
    return nn.LeakyReLU(0.2)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = _act()

    def forward(self, x):
        return x + self.c2(self.act(self.c1(x)))


def pool_to(x: torch.Tensor, size: tuple[int, int], rescale: bool = False) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    k = x.shape[-1] // size[-1]
    y = F.avg_pool2d(x, k)
    return y * k if rescale else y  # the mean of k*k unit-variance values has std 1/k


class Generator(nn.Module):
    def __init__(self, lr_channels: int, static_channels: int, out_channels: int, filters: int = 64,
                 noise_channels: int = 8, residual_blocks: int = 6, factor: int = 8,
                 skip: tuple[int, ...] = ()):
        super().__init__()
        self.factor, self.noise_channels = factor, noise_channels
        self.stages = int(round(math.log2(factor)))
        self.register_buffer("skip", torch.tensor(list(skip) if skip else [-1] * out_channels, dtype=torch.long))
        self.has_skip = any(i >= 0 for i in skip)  # known here: testing the buffer would wait for a GPU per call
        self.head = nn.Conv2d(lr_channels + static_channels + noise_channels, filters, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(filters) for _ in range(residual_blocks)])
        self.body = nn.Conv2d(filters, filters, 3, padding=1)
        self.ups = nn.ModuleList()
        ch = filters
        for s in range(self.stages):
            out_ch = max(filters // (2 ** (s + 1)), min(filters, 16))
            self.ups.append(nn.Sequential(
                nn.Conv2d(ch + static_channels + noise_channels, out_ch, 3, padding=1), _act(),
                nn.Conv2d(out_ch, out_ch, 3, padding=1), _act()))
            ch = out_ch
        self.tail = nn.Sequential(nn.Conv2d(ch + static_channels, ch, 3, padding=1), _act(),
                                  nn.Conv2d(ch, out_channels, 3, padding=1))
        self.act = _act()

    def noise_shape(self, batch: int, lr_shape: tuple[int, int]) -> tuple[int, int, int, int]:
        return batch, self.noise_channels, lr_shape[0] * self.factor, lr_shape[1] * self.factor

    def forward(self, lr: torch.Tensor, static: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2:]
        x = torch.cat([lr, pool_to(static, (h, w)), pool_to(noise, (h, w), rescale=True)], 1)
        f = self.act(self.head(x))
        f = f + self.body(self.blocks(f))
        for s, up in enumerate(self.ups):
            f = F.interpolate(f, scale_factor=2, mode="nearest")
            size = tuple(f.shape[-2:])
            f = up(torch.cat([f, pool_to(static, size), pool_to(noise, size, rescale=True)], 1))
        out = self.tail(torch.cat([f, static], 1))
        if self.has_skip:
            base = F.interpolate(lr, scale_factor=self.factor, mode="bilinear", align_corners=False)
            idx = self.skip.clamp(min=0)
            out = out + base[:, idx] * (self.skip >= 0).to(out.dtype)[None, :, None, None]
        return out


class Critic(nn.Module):
    def __init__(self, lr_channels: int, static_channels: int, out_channels: int, filters: int = 32,
                 factor: int = 8):
        super().__init__()
        self.factor = factor
        stages = int(round(math.log2(factor)))
        layers = [nn.Conv2d(out_channels + static_channels + lr_channels, filters, 3, padding=1), _act()]
        ch = filters
        for _ in range(stages):
            nxt = min(ch * 2, filters * 4)
            layers += [nn.Conv2d(ch, nxt, 4, stride=2, padding=1), _act()]
            ch = nxt
        self.down = nn.Sequential(*layers)
        self.low = nn.Sequential(nn.Conv2d(ch + lr_channels, ch, 3, padding=1), _act(),
                                 nn.Conv2d(ch, ch, 3, padding=1), _act())
        self.out = nn.Linear(ch, 1)

    def forward(self, lr: torch.Tensor, static: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(lr, scale_factor=self.factor, mode="nearest")
        f = self.down(torch.cat([hr, static, up], 1))
        f = self.low(torch.cat([f, lr], 1))
        return self.out(f.mean(dim=(2, 3))).squeeze(1)


def build(arch: dict) -> tuple[Generator, Critic]:
    g = Generator(arch["lr_channels"], arch["static_channels"], arch["out_channels"], arch["generator_filters"],
                  arch["noise_channels"], arch["residual_blocks"], arch["factor"], tuple(arch["skip"]))
    d = Critic(arch["lr_channels"], arch["static_channels"], arch["out_channels"], arch["discriminator_filters"],
               arch["factor"])
    return g, d
