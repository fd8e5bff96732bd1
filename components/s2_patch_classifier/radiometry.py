"""Dark-object subtraction per scene (``--dark_object``).

Haze, thin cloud and sun glint add a nearly uniform offset to every band of a scene, and a network
trained on clear scenes never saw it: on the sen2ships ports, the hazy Cartagena scene (water at
6600-10000 in every band, 500-2000 elsewhere) scored no ship at all. Each band of a scene is
shifted so that its dark end (the 2nd percentile of its valid pixels: open water or shadow) sits at
a reference level, the mean dark level of the training scenes. The shift is applied to whole tiles
before patches are cut and before prediction; the levels travel in the model's metadata, so a
model file corrects the scenes it classifies by itself.
"""

from __future__ import annotations

import math

import numpy as np

from components.common.errors import ServiceError

from .data import Tile

DARK_PERCENTILE = 2.0
MAX_SAMPLE_SIDE = 2048  # larger scenes are sampled on a regular grid of about this many pixels a side


def dark_levels(tile: Tile, bands: tuple[str, ...]) -> np.ndarray:
    """Each band's dark level: the DARK_PERCENTILE-th percentile of its valid pixels (of every
    pixel up to MAX_SAMPLE_SIDE a side, else of a decimated read: a full Sentinel-2 tile is not
    decoded twice)."""
    step = max(1, math.ceil(max(tile.height, tile.width) / MAX_SAMPLE_SIDE))
    shape = (math.ceil(tile.height / step), math.ceil(tile.width / step)) if step > 1 else None
    saved, tile.offsets = tile.offsets, {}  # the tile's own values, whatever shift it already carries
    try:
        values = tile.read(bands, shape=shape).reshape(len(bands), -1)
    finally:
        tile.offsets = saved
    empty = [b for b, v in zip(bands, values) if np.isnan(v).all()]
    if empty:
        raise ServiceError(f"tile {tile.name}: band {', '.join(empty)} holds no valid pixel (no dark level)")
    return np.nanpercentile(values, DARK_PERCENTILE, axis=1)


def reference(levels: list[np.ndarray]) -> dict:
    """The training scenes' mean dark level per band, as kept in a patch index and a model."""
    return {"percentile": DARK_PERCENTILE, "levels": [round(float(v), 3) for v in np.mean(levels, axis=0)]}


def correct(tile: Tile, bands: tuple[str, ...], ref: dict, levels: np.ndarray | None = None) -> None:
    """From now on ``tile`` reads with each band's dark level (``levels``, measured when not
    given) moved to the reference's."""
    levels = dark_levels(tile, bands) if levels is None else levels
    shift = np.asarray(ref["levels"], np.float64) - levels
    tile.offsets = {b: float(s) for b, s in zip(bands, shift)}
