"""Shifted training windows: each drawn patch is replaced by a window moved up to ``shift`` px
from it, cut from the patch and its training neighbours on the side-by-side grid, so that a ship
is seen at many places in its window and against its neighbours' context, not always at one
offset. Only training patches lend pixels: no validation pixel reaches the training. A
direction without a training neighbour (a tile's edge, no data, a validation patch) is not
shifted."""

from __future__ import annotations

import numpy as np

from components.common.errors import ServiceError

from .patches import PatchSet, origins


def neighbours(where: np.ndarray, patch: int, allowed: np.ndarray) -> np.ndarray:
    """(N, 3, 3) index of the patch one patch up/left (0), here (1), down/right (2) of each
    patch, among the ``allowed`` ones; -1 where there is none. ``where``: (tile, row, col) (N, 3)."""
    at = {tuple(where[i]): int(i) for i in allowed.tolist()}
    out = np.full((len(where), 3, 3), -1, np.int64)
    for i in allowed.tolist():
        t, y, x = where[i].tolist()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                out[i, dy + 1, dx + 1] = at.get((t, y + dy * patch, x + dx * patch), -1)
    return out


def draw_offsets(nb: np.ndarray, idx: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) offsets (rows, cols) in [-shift, shift]; 0 along a direction whose neighbours (the
    side one, and the corner one when both move) are missing."""
    n = len(idx)
    off = rng.integers(-shift, shift + 1, size=(n, 2))
    s = np.sign(off) + 1
    off[nb[idx, s[:, 0], 1] < 0, 0] = 0
    off[nb[idx, 1, s[:, 1]] < 0, 1] = 0
    s = np.sign(off) + 1
    corner = (off != 0).all(1) & (nb[idx, s[:, 0], s[:, 1]] < 0)
    off[corner & (rng.random(n) < 0.5), 0] = 0
    off[corner & (off[:, 0] != 0), 1] = 0
    return off


def crop(array: np.ndarray, nb: np.ndarray, idx: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Windows (n, ..., P, P) of ``array`` (N, ..., P, P) moved by ``off`` from the patches
    ``idx``, pieced together from up to four patches."""
    p = array.shape[-1]
    out = np.empty((len(idx),) + array.shape[1:], array.dtype)
    for k, (i, (dy, dx)) in enumerate(zip(idx.tolist(), off.tolist())):
        if dy == 0 and dx == 0:
            out[k] = array[i]
            continue
        # a negative offset starts in the patch above (left): the upper (left) piece comes from there
        oy, ox = dy % p, dx % p
        up, left = (0 if dy >= 0 else -1), (0 if dx >= 0 else -1)
        rows = [(0, p - oy, oy)] + ([(p - oy, p, 0)] if oy else [])
        cols = [(0, p - ox, ox)] + ([(p - ox, p, 0)] if ox else [])
        for ri, (r0, r1, src_r) in enumerate(rows):
            for ci, (c0, c1, src_c) in enumerate(cols):
                j = nb[i, up + ri + 1, left + ci + 1]
                out[k, ..., r0:r1, c0:c1] = array[j, ..., src_r:src_r + r1 - r0, src_c:src_c + c1 - c0]
    return out


class Shifts:
    """The neighbours of a training set's patches, and shifted windows of them."""

    def __init__(self, patches: PatchSet, train_idx: np.ndarray, shift: int, rng: np.random.Generator):
        if not (patches.folder / "positions.npy").is_file():
            raise ServiceError(f"--shift: {patches.folder} does not say where its patches lie (positions.npy): "
                               "extract the patches again")
        self.patches, self.shift, self.rng = patches, shift, rng
        self.nb = neighbours(origins(patches), patches.images.shape[-1], train_idx)

    def offsets(self, idx: np.ndarray) -> np.ndarray:
        return draw_offsets(self.nb, idx, self.shift, self.rng)

    def __call__(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of shifted windows from the patches ``idx`` (in that order)."""
        off = self.offsets(idx)
        return crop(self.patches.images, self.nb, idx, off), crop(self.patches.labels, self.nb, idx, off)
