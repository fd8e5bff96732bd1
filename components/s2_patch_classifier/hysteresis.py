"""Hysteresis on a class map: objects are seeded where a class wins the argmax and grown over
neighbouring pixels where that class is merely probable.

A small object (a ship of 40 pixels at 10 m) often wins the argmax only at its core: the
argmax alone leaves it fragmented or shrunk, and lowering the threshold everywhere brings specks
of shoreline and wake. Growing only from confident seeds keeps the seeds' precision and the low
threshold's extent (the two-threshold rule of Canny edges).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)


def candidates(prob: np.ndarray, threshold: float) -> np.ndarray:
    """For class probabilities (K, H, W) (index 0 background): the index of the most probable
    foreground class where its probability reaches ``threshold``, else 0 (uint8)."""
    best = prob[1:].argmax(0)
    return np.where(np.take_along_axis(prob[1:], best[None], 0)[0] >= threshold, best + 1, 0).astype(np.uint8)


def grow(classes: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``classes`` (H, W) class indices (0 background, negative no data) with every background
    pixel whose candidate class ``c`` (:func:`candidates`) connects, through such pixels
    (8-neighbourhood), to a pixel of class ``c`` set to ``c``. A new array."""
    out = classes.copy()
    background = classes == 0
    for c in np.unique(cand[cand > 0]):
        seeds = classes == c
        lab, n = ndimage.label(seeds | ((cand == c) & background), EIGHT)
        keep = np.zeros(n + 1, bool)
        keep[np.unique(lab[seeds])] = True
        keep[0] = False
        out[keep[lab] & background] = c
    return out
