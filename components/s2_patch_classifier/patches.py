"""``extract_data``: labelled tiles cut into square patches, with band order, classes and the
normalisation statistics, in a folder the training step reads:

- ``images.npy``  float32 (N, bands, P, P), raw band values, NaN = no data;
- ``labels.npy``  uint8 (N, P, P): class index (0 background, i = i-th selected class),
  255 = ignored (no data in the image);
- ``patches.json`` the index: bands, patch size, classes, statistics, per-tile patch ranges and
  each patch's (tile, row, col).

Tiles are read one row of patches at a time into memory-mapped arrays, so memory stays bounded
by one strip of a tile. Patches tile the image without overlap; the last row and column are
aligned on the tile's edge (they overlap their neighbour) so that every pixel is covered.

Normalisation: per band, the 0.5 and 99.5 percentiles (low, high) of a pixel sample, then mean
and standard deviation of the values clipped to [low, high]. The model applies
``(clip(x, low, high) - mean) / std`` as its first layer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from components.common.errors import ServiceError
from components.common.logs import Progress

from . import radiometry
from .data import IGNORE, Tile, class_lut, resolve_bands

log = logging.getLogger(__name__)

INDEX = "patches.json"
FORMAT = "s2-patch-classifier-patches"
SAMPLE_PER_PATCH = 256
PERCENTILES = (0.5, 99.5)


@dataclass
class PatchSet:
    """An extracted patch folder, opened (arrays memory-mapped)."""

    folder: Path
    index: dict
    images: np.ndarray
    labels: np.ndarray | None

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.index["bands"])

    @property
    def stats(self) -> dict:
        return self.index["stats"]

    def __len__(self) -> int:
        return len(self.images)


def positions(size: int, patch: int, stride: int) -> list[int]:
    """Window origins along one axis: every ``stride``, the last aligned on the edge."""
    if size < patch:
        return []
    out = list(range(0, size - patch + 1, stride))
    if out[-1] != size - patch:
        out.append(size - patch)
    return out


def side_by_side(patches: PatchSet) -> np.ndarray | None:
    """Indexes of the patches of an overlapping set (cut with a stride below the patch size) that lie
    on the side-by-side grid of their tile: the patches a stride of one patch would have cut.
    None for a side-by-side set."""
    patch, stride = patches.index.get("patch_size"), patches.index.get("stride")
    if stride is None or stride >= patch:  # older or in-memory sets: side by side
        return None
    grids = [(set(positions(t["height"], patch, patch)), set(positions(t["width"], patch, patch)))
             for t in patches.index["tiles"]]
    return np.flatnonzero([y in grids[t][0] and x in grids[t][1] for t, y, x in origins(patches).tolist()])


def origins(patches: PatchSet) -> np.ndarray:
    """Each patch's (tile, row, col) in its tile, int (N, 3)."""
    return np.load(patches.folder / "positions.npy")


def sharing_pixels(patches: PatchSet, index: np.ndarray) -> np.ndarray:
    """Mask (N,) of the patches that share a pixel with any of the patches ``index``."""
    where, patch = origins(patches), patches.index["patch_size"]
    out = np.zeros(len(where), bool)
    for t, y, x in where[index].tolist():
        out |= (where[:, 0] == t) & (np.abs(where[:, 1] - y) < patch) & (np.abs(where[:, 2] - x) < patch)
    return out


def check_size(tile: Tile, patch: int) -> None:
    if tile.width < patch or tile.height < patch:
        raise ServiceError(f"tile {tile.name} is {tile.height}x{tile.width} px, smaller than a patch "
                           f"(--patch_size {patch}): give larger tiles or --patch_size 64")


def extract(tiles: list[Tile], out: Path, bands: tuple[str, ...], patch: int, classes: tuple[int, ...],
            simplified: bool, labelled: bool = True, seed: int = 0, dark_object: bool = False,
            stride: int | None = None) -> PatchSet:
    """Cut ``tiles`` into patches under ``out`` (created); labels too when ``labelled``; with
    ``dark_object``, each tile's bands shifted to the tiles' mean dark level first (radiometry);
    every ``stride`` px (default: ``patch``, side by side; less overlaps them)."""
    if labelled:
        unlabelled = [t.name for t in tiles if not t.has_labels]
        for name in unlabelled:
            log.warning("tile %s has no labels (no *_label raster or COCO file beside it): left out", name)
        tiles = [t for t in tiles if t.has_labels]
        if not tiles:
            raise ServiceError(f"no labelled tile among the input tiles ({', '.join(unlabelled[:5])}): put "
                               "<tile>_label.tif or a COCO .json beside each tile")
    bands = resolve_bands(tiles, bands)
    for t in tiles:
        check_size(t, patch)
    if labelled:  # label rasters of another size fail before any work
        for t in tiles:
            t.check_label_size()
    lut = class_lut(classes, simplified)
    dark = None
    if dark_object:
        levels = [radiometry.dark_levels(t, bands) for t in tiles]
        dark = radiometry.reference(levels)
        for t, level in zip(tiles, levels):
            radiometry.correct(t, bands, dark, level)
    stride = stride or patch
    grids = [(positions(t.height, patch, stride), positions(t.width, patch, stride)) for t in tiles]
    total = sum(len(r) * len(c) for r, c in grids)
    out.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(out / "images.npy", "w+", np.float32, (total, len(bands), patch, patch))
    labels = np.lib.format.open_memmap(out / "labels.npy", "w+", np.uint8, (total, patch, patch)) if labelled else None
    where = np.zeros((total, 3), np.int32)
    rng = np.random.default_rng(seed)
    samples, counts, entries = [], np.zeros(len(classes) + 1, np.int64), []
    n = 0
    progress = Progress(sum(len(r) for r, _ in grids), "patches")
    for ti, (tile, (rows, cols)) in enumerate(zip(tiles, grids)):
        raw_labels = tile.read_labels() if labelled else None
        start = n
        for y in rows:
            strip = tile.read(bands, Window(0, y, tile.width, patch))
            nodata = np.isnan(strip).all(axis=0)
            lab = None
            if labelled:
                lab = lut[raw_labels[y:y + patch]]
                lab[nodata] = IGNORE
            for x in cols:
                img = strip[:, :, x:x + patch]
                if np.isnan(img).all():
                    continue
                images[n] = img
                where[n] = (ti, y, x)
                if labelled:
                    labels[n] = lab[:, x:x + patch]
                    counts += np.bincount(labels[n][labels[n] != IGNORE].ravel(), minlength=len(counts))[:len(counts)]
                flat = img.reshape(len(bands), -1)
                pick = rng.integers(0, flat.shape[1], SAMPLE_PER_PATCH)
                samples.append(flat[:, pick])
                n += 1
            progress.advance()
        entries.append({"name": tile.name, "sources": tile.sources, "width": tile.width, "height": tile.height,
                        "crs": str(tile.crs) if tile.crs else None, "patches": [start, n]})
    if n == 0:
        raise ServiceError("every patch of the input tiles is no data")
    images.flush()
    if labels is not None:
        labels.flush()
    if n < total:  # all-no-data patches were skipped: shrink the arrays
        del images
        _truncate(out / "images.npy", n)
        if labels is not None:
            del labels
            _truncate(out / "labels.npy", n)
    np.save(out / "positions.npy", where[:n])
    stats = statistics(np.concatenate(samples, axis=1))
    index = {"format": FORMAT, "version": 1, "bands": list(bands), "patch_size": patch, "count": n,
             "labelled": labelled, "classes": [0, *classes], "simplified": simplified, "stats": stats,
             "class_pixels": counts.tolist() if labelled else None, "tiles": entries}
    if dark:  # indexes without these keep the keys they always had
        index["dark_object"] = dark
    if stride != patch:
        index["stride"] = stride
    (out / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    if labelled:
        log.info("%d patches of %d px from %d tiles; class pixels %s", n, patch, len(tiles),
                 dict(zip(index["classes"], index["class_pixels"])))
    return open_patches(out)


def _truncate(path: Path, n: int) -> None:
    full = np.load(path, mmap_mode="r")
    part = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), "w+", full.dtype, (n, *full.shape[1:]))
    part[:] = full[:n]
    part.flush()
    del full, part
    path.with_suffix(".tmp.npy").replace(path)


def statistics(sample: np.ndarray) -> dict:
    """Per-band low/high percentiles and mean/std of the clipped values, NaN ignored."""
    low, high, mean, std = [], [], [], []
    for band in sample:
        v = band[np.isfinite(band)].astype(np.float64)
        if v.size == 0:
            v = np.zeros(1)
        lo, hi = np.percentile(v, PERCENTILES)
        c = np.clip(v, lo, hi)
        low.append(float(lo))
        high.append(float(hi))
        mean.append(float(c.mean()))
        std.append(float(max(c.std(), 1e-6)))
    return {"low": low, "high": high, "mean": mean, "std": std}


def open_patches(folder: Path) -> PatchSet:
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ServiceError(f"{folder} is not a patch folder written by extract_data ({e.__class__.__name__})") from None
    if index.get("format") != FORMAT:
        raise ServiceError(f"{folder / INDEX} is not a patch index written by extract_data")
    images = np.load(folder / "images.npy", mmap_mode="r")
    labels = np.load(folder / "labels.npy", mmap_mode="r") if (folder / "labels.npy").exists() else None
    return PatchSet(folder, index, images, labels)


def is_patch_folder(path: Path) -> bool:
    return (Path(path) / INDEX).is_file()
