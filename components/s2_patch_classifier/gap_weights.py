"""Loss weights on the background between nearby objects (Ronneberger et al. 2015, the U-Net's
"separation border" weights): ``1 + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` on background pixels,
where d1 and d2 are the distances to the nearest and second-nearest foreground component (8-
connected). Ships moored in a row are a few pixels apart; weighting the water or quay between
them teaches the network to keep its probability low there, so their components stay apart."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .data import IGNORE

SIGMA = 8.0  # px: at 10 m, gaps of 5-20 px between moored ships weigh; a ship 50 px away does not
EIGHT = np.ones((3, 3), bool)


def gap_weights(labels: np.ndarray, w0: float, sigma: float = SIGMA) -> np.ndarray:
    """float32 weights of the pixels of ``labels`` (..., H, W; 0 background, 1-254 classes,
    IGNORE no data): 1 everywhere but on the background of a patch holding two components or more."""
    flat = labels.reshape(-1, *labels.shape[-2:])
    out = np.ones(flat.shape, np.float32)
    for i, lab in enumerate(flat):
        fg = (lab > 0) & (lab != IGNORE)
        comps, n = ndimage.label(fg, EIGHT)
        if n < 2:
            continue
        dist = np.stack([ndimage.distance_transform_edt(comps != k) for k in range(1, n + 1)])
        dist.partition(1, axis=0)
        gap = dist[0] + dist[1]
        bg = lab == 0
        out[i][bg] += w0 * np.exp(-gap[bg] ** 2 / (2 * sigma ** 2))
    return out.reshape(labels.shape)
