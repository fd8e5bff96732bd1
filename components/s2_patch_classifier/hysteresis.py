"""Hysteresis on a class map: objects are seeded where a class wins the argmax and grown over
neighbouring pixels where that class is merely probable.

A small object (a ship of 40 pixels at 10 m) often wins the argmax only at its core: the
argmax alone leaves it fragmented or shrunk, and lowering the threshold everywhere brings specks
of shoreline and wake. Growing only from confident seeds keeps the seeds' precision and the low
threshold's extent (the two-threshold rule of Canny edges). Growing also joins neighbouring
objects through the halo around them; :func:`split` parts them again between their seeds.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)


def candidates(prob: np.ndarray, threshold: float) -> np.ndarray:
    """For class probabilities (K, H, W) (index 0 background): the index of the most probable
    foreground class where its probability reaches ``threshold``, else 0 (uint8)."""
    best, p = best_foreground(prob)
    return np.where(p >= threshold, best, 0).astype(np.uint8)


def best_foreground(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For class probabilities (K, H, W): the most probable foreground class's index and its
    probability, each (H, W)."""
    best = prob[1:].argmax(0)
    return best + 1, np.take_along_axis(prob[1:], best[None], 0)[0]


def grow(classes: np.ndarray, cand: np.ndarray, levels: np.ndarray | None = None,
         split_depth: float = 0.0) -> np.ndarray:
    """``classes`` (H, W) class indices (0 background, negative no data) with every background
    pixel whose candidate class ``c`` (:func:`candidates`) connects, through such pixels
    (8-neighbourhood), to a pixel of class ``c`` set to ``c``; with ``split_depth`` > 0 the
    grown objects are then cut apart between their seeds (:func:`split` on ``levels``). A new
    array."""
    if split_depth > 0:
        return split(grow(classes, cand), classes, levels, split_depth)
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


# The four forward neighbours of the 8-neighbourhood: each neighbouring pair once.
_FORWARD = ((0, 1), (1, 0), (1, 1), (1, -1))
_NEIGHBOURS = _FORWARD + tuple((-dy, -dx) for dy, dx in _FORWARD)


def level(prob: np.ndarray) -> np.ndarray:
    """Probabilities (H, W) in [0, 1] as uint8 levels 0-255 (what :func:`split` reads)."""
    return np.rint(np.clip(prob, 0.0, 1.0) * 255).astype(np.uint8)


def split(grown: np.ndarray, seeds: np.ndarray, levels: np.ndarray, depth: float) -> np.ndarray:
    """``grown`` (:func:`grow` of ``seeds``) with each object cut apart between its seeds where the
    probability between them dips more than ``depth`` below the lower of their peaks.

    Growing at a low threshold joins neighbouring ships (and a ship and a bright quay) through the
    halo around them; each object keeps one piece per seed (a watershed of ``levels``, the best
    foreground class's probability as :func:`level`), pieces separated by a shallow dip are joined
    again (the seeds of one ship broken by noise), and the others are parted by background on
    the dip's lower side, so that they are separate components. A new array."""
    out = grown.copy()
    dip = depth * 255  # in levels
    for c in np.unique(seeds[seeds > 0]):
        objects, _ = ndimage.label(grown == c, EIGHT)
        for i, box in enumerate(ndimage.find_objects(objects), 1):
            region = objects[box] == i
            markers, n = ndimage.label(region & (seeds[box] == c), EIGHT)
            if n < 2:
                continue
            lv = levels[box].astype(np.int32)
            basins = _join_shallow(_flood(markers, lv, region), lv, n, dip)
            out[box][_parting(basins, lv)] = 0
    return out


def _flood(markers: np.ndarray, lv: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Every pixel of ``region`` labelled with the marker that reaches it along the highest path
    (the one whose lowest level is highest; ties: first come): a watershed flooded from the peaks
    down. ``scipy.ndimage.watershed_ift`` is not used: on plateaus it gives a basin's whole share
    to one marker."""
    import heapq

    basins = markers.copy()
    h, w = basins.shape
    heap = [(-int(lv[y, x]), i, y, x) for i, (y, x) in enumerate(zip(*np.nonzero(markers)))]
    heapq.heapify(heap)
    order = len(heap)
    while heap:
        key, _, y, x = heapq.heappop(heap)
        for dy, dx in _NEIGHBOURS:
            v, u = y + dy, x + dx
            if 0 <= v < h and 0 <= u < w and region[v, u] and not basins[v, u]:
                basins[v, u] = basins[y, x]
                heapq.heappush(heap, (max(key, -int(lv[v, u])), order, v, u))
                order += 1
    return basins


def _pairs(labels: np.ndarray):
    """For each forward neighbour: the two (rows, cols) slices whose pixels are neighbours."""
    h, w = labels.shape
    for dy, dx in _FORWARD:
        a = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        b = (slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
        yield a, b


def _join_shallow(basins: np.ndarray, lv: np.ndarray, n: int, dip: float) -> np.ndarray:
    """Basins 1..n relabelled so that two meeting where their lower peak stands less than ``dip``
    above the pass between them (the highest level along their border) are one; joined from the
    highest pass down, each joined basin keeping its highest peak."""
    peak = np.zeros(n + 1)
    peak[1:] = ndimage.maximum(lv, basins, np.arange(1, n + 1))
    passes: dict = {}
    for a, b in _pairs(basins):
        la, lb = basins[a], basins[b]
        meet = (la > 0) & (lb > 0) & (la != lb)
        lo, hi = np.minimum(la[meet], lb[meet]), np.maximum(la[meet], lb[meet])
        for pair, value in zip(zip(lo.tolist(), hi.tolist()), np.minimum(lv[a][meet], lv[b][meet]).tolist()):
            passes[pair] = max(value, passes.get(pair, -1))
    root = np.arange(n + 1)

    def find(x):
        while root[x] != x:
            x = root[x]
        return x

    for (p, q), value in sorted(passes.items(), key=lambda kv: -kv[1]):
        p, q = find(p), find(q)
        if p != q and min(peak[p], peak[q]) - value < dip:
            root[q] = p
            peak[p] = max(peak[p], peak[q])
    return np.array([find(x) for x in range(n + 1)])[basins]


def _parting(basins: np.ndarray, lv: np.ndarray) -> np.ndarray:
    """Where two different basins touch, the lower pixel of each touching pair (ties: the
    higher label's): True there. Without them no pixel of one basin neighbours another's."""
    cut = np.zeros(basins.shape, bool)
    for a, b in _pairs(basins):
        la, lb = basins[a], basins[b]
        meet = (la > 0) & (lb > 0) & (la != lb)
        a_lower = (lv[a] < lv[b]) | ((lv[a] == lv[b]) & (la > lb))
        cut[a] |= meet & a_lower
        cut[b] |= meet & ~a_lower
    return cut
