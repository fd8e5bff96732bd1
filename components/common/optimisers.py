"""The trainers' Adam, set up once for the CPU and for CUDA."""

from __future__ import annotations

import torch


def adam(params, lr: float, device: torch.device, betas=(0.9, 0.999), graphed: bool = False,
         rate_on_device: bool = False) -> torch.optim.Adam:
    """Adam, fused on CUDA (one kernel per step instead of several per parameter); the CPU keeps
    the default implementation so that its results do not change. For a step replayed as a CUDA
    graph it is capturable (its step counts on the device), and with ``rate_on_device`` its
    learning rate is a device tensor that a schedule changes in place (a graph reads the rate it
    captured, never a new float)."""
    if device.type != "cuda":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    if graphed and rate_on_device:
        lr = torch.tensor(lr, device=device)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True, capturable=graphed)
