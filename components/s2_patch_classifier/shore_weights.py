"""Loss weights on the water line (``--shore_weight``): ``1 + w`` on the background pixels within
SHORE_HALF px of the edge between water (NDWI = (B3 - B8) / (B3 + B8) > 0) and anything else,
except within SHIP_CLEAR px of an object.

Networks trained on ports whose ships are mostly moored learn "bright against water", and on an
unseen port every quay, groyne, pier and bridge came out nearly as ship-like as its ships (a ridge
of probability 0.3-0.5 along the whole shore, peaks above 0.5 on structures). Weighting the shore's
background teaches the network to keep it low there; the ring around each ship keeps its weight
so that the ship's own edge is not pushed down with the shore."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .data import IGNORE
from .params import SHORE_BANDS

SHORE_HALF = 2   # px on each side of the water line: the 3-5 px ridge the networks drew along shores
SHIP_CLEAR = 3   # px around an object left at weight 1 (its quay side included)


def shore_weights(images: np.ndarray, labels: np.ndarray, w: float, green: int, nir: int,
                  half: int = SHORE_HALF) -> np.ndarray:
    """float32 weights (N, H, W) for patches ``images`` (N, bands, H, W: raw values; NaN no data)
    and ``labels`` (N, H, W): 1 + ``w`` on the shore's background (``half`` px on each side of
    the water line), 1 elsewhere. ``green`` and ``nir`` are the positions of B3 and B8 among the
    bands."""
    if half < 1:  # scipy dilates "until nothing changes" below 1 iteration: the whole patch would weigh
        raise ValueError(f"shore band of {half} px: at least 1 px on each side of the water line")
    out = np.ones(labels.shape, np.float32)
    water = images[:, green] > images[:, nir]  # NDWI > 0 without the division; NaN: not water
    for i in range(len(labels)):
        wet = ndimage.binary_dilation(water[i], iterations=half)
        dry = ndimage.binary_dilation(~water[i], iterations=half)
        shore = wet & dry & (labels[i] == 0)
        objects = (labels[i] > 0) & (labels[i] != IGNORE)
        if objects.any():
            shore &= ~ndimage.binary_dilation(objects, iterations=SHIP_CLEAR)
        out[i][shore] += w
    return out


def band_positions(bands: tuple[str, ...]) -> tuple[int, int] | None:
    """Positions of B3 and B8 in ``bands``; None when one is missing."""
    if not all(b in bands for b in SHORE_BANDS):
        return None
    return bands.index(SHORE_BANDS[0]), bands.index(SHORE_BANDS[1])
