"""``extract_data``: labelled tiles cut into square patches, with band order, classes and the
normalisation statistics, in a folder the training step reads:

- ``images.npy``  float32 (N, bands, P, P), band values in the service's unit (reflectance x 10000,
  :mod:`.units`; the index's ``unit``), NaN = no data;
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

from . import radiometry, units
from .data import BEN19_NAMES, IGNORE, Tile, class_lut, resolve_bands

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
    """A tile must hold one patch; the message says what would: a smaller --patch_size that fits
    the tile, else tiles of at least the smallest patch size."""
    from .params import PATCH_SIZES

    if tile.width < patch or tile.height < patch:
        fits = [p for p in PATCH_SIZES if p <= min(tile.width, tile.height)]
        smallest = min(PATCH_SIZES)
        advice = (f"give --patch_size {max(fits)} or tiles of at least {patch}x{patch} px" if fits else
                  f"give tiles of at least {smallest}x{smallest} px ({smallest} is the smallest --patch_size)")
        raise ServiceError(f"tile {tile.name} is {tile.height}x{tile.width} px, smaller than a patch "
                           f"(--patch_size {patch}): {advice}")


def extract(tiles: list[Tile], out: Path, bands: tuple[str, ...], patch: int, classes: tuple[int, ...],
            simplified: bool, labelled: bool = True, seed: int = 0, dark_object: bool = False,
            stride: int | None = None) -> PatchSet:
    """Cut ``tiles`` into patches under ``out`` (created); labels too when ``labelled``; with
    ``dark_object``, each tile's bands shifted to the tiles' mean dark level first (radiometry);
    every ``stride`` px (default: ``patch``, side by side; less overlaps them)."""
    if labelled:
        unlabelled = [t.name for t in tiles if not t.has_labels]
        for name in unlabelled:
            log.warning("tile %s has no labels (no *_label raster, reBEN *_reference_map or COCO file beside it): "
                        "left out", name)
        tiles = [t for t in tiles if t.has_labels]
        if not tiles:
            raise ServiceError(f"no labelled tile among the input tiles ({', '.join(unlabelled[:5])}): put "
                               "<tile>_label.tif (pixel labels; BigEarthNet v1's image-level labels cannot train a "
                               "pixel classifier, reBEN's <patch>_reference_map.tif can) or a COCO .json beside each "
                               "tile")
    bands = resolve_bands(tiles, bands)
    for t in tiles:
        check_size(t, patch)
    if labelled:  # label rasters of another size fail before any work
        for t in tiles:
            t.check_label_size()
        clc = [t for t in tiles if t.label_scheme == "clc"]
        if clc:
            log.info("%d tile(s) labelled by reBEN reference maps (%s, ...): their CORINE codes read as BigEarthNet's "
                     "19 classes (%s; other codes background 0); --selected-classes picks among these", len(clc),
                     clc[0].label.name, ", ".join(f"{k} {v}" for k, v in BEN19_NAMES.items()))
    for t in tiles:  # every tile's unit decided (or refused) before any work
        t.resolve_units()
    units.log_decisions(tiles)
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
                        "crs": str(tile.crs) if tile.crs else None, "patches": [start, n], "read_as": tile.unit_kind})
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
    index = {"format": FORMAT, "version": 1, "unit": units.UNIT, "bands": list(bands), "patch_size": patch, "count": n,
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
    """An extract_data folder, checked before any training: a damaged or hand-edited folder (a
    truncated array, an index that disagrees with the arrays, unusable statistics) is one
    ServiceError line naming the file and the problem."""
    folder = Path(folder)
    index = _read_index(folder)
    images = _load_array(folder / "images.npy")
    labels = _load_array(folder / "labels.npy") if (folder / "labels.npy").exists() else None
    _check_images(folder / "images.npy", images, index)
    if index["labelled"]:
        if labels is None:
            raise ServiceError(f"{folder / 'labels.npy'} is missing: {INDEX} says the patches are labelled")
        _check_labels(folder / "labels.npy", labels, index)
    _check_positions(folder, index)
    return PatchSet(folder, index, images, labels)


def _read_index(folder: Path) -> dict:
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ServiceError(f"{folder} is not a patch folder written by extract_data ({e.__class__.__name__})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ServiceError(f"{folder / INDEX} is not a patch index written by extract_data"
                           + ("" if isinstance(index, dict) else f" (a JSON {type(index).__name__}, not an object)"))
    problem = _index_problem(index)
    if problem:
        raise ServiceError(f"{folder / INDEX} is damaged: {problem}")
    return index


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index_problem(index: dict) -> str | None:
    """What makes a parsed index unusable, in words; None when it is sound."""
    bands = index.get("bands")
    if not (isinstance(bands, list) and bands and all(isinstance(b, str) for b in bands)):
        return f"'bands' must be a list of band names, got {bands!r}"
    for key in ("patch_size", "count"):
        if not (_is_int(index.get(key)) and index[key] > 0):
            return f"'{key}' must be a whole number > 0, got {index.get(key)!r}"
    if "stride" in index and not (_is_int(index["stride"]) and index["stride"] > 0):
        return f"'stride' must be a whole number > 0, got {index['stride']!r}"
    if "unit" in index and units.problem(index["unit"]):
        return f"'unit': {units.problem(index['unit'])}"
    if not isinstance(index.get("labelled"), bool) or not isinstance(index.get("simplified"), bool):
        return f"'labelled' and 'simplified' must be true or false, got {index.get('labelled')!r}, " \
               f"{index.get('simplified')!r}"
    classes = index.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(_is_int(c) for c in classes)):
        return f"'classes' must list the background 0 and at least one class, got {classes!r}"
    return _stats_problem(index.get("stats"), len(bands)) or _tiles_problem(index.get("tiles"), index["count"])


def _stats_problem(stats, n_bands: int) -> str | None:
    """The normalisation (clip(x, low, high) - mean) / std needs finite values, one per band, std > 0."""
    if not isinstance(stats, dict):
        return f"'stats' must be an object with low, high, mean and std, got {stats!r}"
    for key in ("low", "high", "mean", "std"):
        values = stats.get(key)
        if not (isinstance(values, list) and len(values) == n_bands
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values)):
            return f"'stats.{key}' must be {n_bands} finite numbers, one per band, got {values!r}"
    if not all(v > 0 for v in stats["std"]):
        return f"'stats.std' must be > 0 for every band (each band is divided by it), got {stats['std']!r}"
    if not all(lo <= hi for lo, hi in zip(stats["low"], stats["high"])):
        return f"'stats.low' must not exceed 'stats.high', got {stats['low']!r} and {stats['high']!r}"
    return None


def _tiles_problem(tiles, count: int) -> str | None:
    if not (isinstance(tiles, list) and tiles):
        return f"'tiles' must be a list of the tiles the patches come from, got {tiles!r}"
    for t in tiles:
        rng = t.get("patches") if isinstance(t, dict) else None
        if not (isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(rng, list) and len(rng) == 2
                and all(_is_int(v) for v in rng) and 0 <= rng[0] <= rng[1] <= count):
            return f"each of 'tiles' must have a 'name' and 'patches' [start, end] within 0..{count} (the count), " \
                   f"got {t!r}"
    return None


def _load_array(path: Path) -> np.ndarray:
    """A .npy file memory-mapped; a truncated, empty or pickled one is a ServiceError."""
    try:
        array = np.load(path, mmap_mode="r")  # allow_pickle stays False: no code from a data file
    except FileNotFoundError:
        raise ServiceError(f"{path} is missing: extract_data writes it beside {INDEX}") from None
    except (OSError, ValueError, EOFError) as e:
        raise ServiceError(f"{path} is damaged or not an array written by extract_data: "
                           f"{' '.join(str(e).split()) or type(e).__name__}") from None
    if not isinstance(array, np.ndarray):
        raise ServiceError(f"{path} is not a single NumPy array (an .npz archive?)")
    return array


def _check_images(path: Path, images: np.ndarray, index: dict) -> None:
    p = index["patch_size"]
    expected = (index["count"], len(index["bands"]), p, p)
    if images.dtype != np.float32 or images.shape != expected:
        raise ServiceError(f"{path} holds {images.dtype} {images.shape}, but {INDEX} describes float32 {expected} "
                           f"({index['count']} patches of {len(index['bands'])} bands, {p} x {p} px)")


def _check_labels(path: Path, labels: np.ndarray, index: dict) -> None:
    p = index["patch_size"]
    expected = (index["count"], p, p)
    if labels.dtype != np.uint8 or labels.shape != expected:
        raise ServiceError(f"{path} holds {labels.dtype} {labels.shape}, but {INDEX} describes uint8 {expected} "
                           f"({index['count']} patches of {p} x {p} px)")
    unknown = _values_above(labels, len(index["classes"]) - 1)
    if unknown:
        raise ServiceError(f"{path} holds label values {', '.join(map(str, unknown))}, beyond the "
                           f"{len(index['classes'])} classes of {INDEX} (0..{len(index['classes']) - 1}, "
                           f"{IGNORE} ignored)")


def _values_above(labels: np.ndarray, top: int) -> list[int]:
    """The label values above ``top`` other than IGNORE, in one pass by chunks (memory-mapped file)."""
    seen = np.zeros(256, bool)
    step = max(1, (64 << 20) // max(1, labels[0].size))
    for start in range(0, len(labels), step):
        seen |= np.bincount(np.asarray(labels[start:start + step]).ravel(), minlength=256) > 0
    return [int(v) for v in np.flatnonzero(seen) if v > top and v != IGNORE]


def _check_positions(folder: Path, index: dict) -> None:
    """positions.npy, each patch's (tile, row, col): needed by overlapping sets, checked when present."""
    path = folder / "positions.npy"
    if not path.exists():
        if "stride" in index:
            raise ServiceError(f"{path} is missing: the overlapping patches (stride {index['stride']}) need it")
        return
    where = _load_array(path)
    if where.dtype.kind not in "iu" or where.shape != (index["count"], 3):
        raise ServiceError(f"{path} holds {where.dtype} {where.shape}, but {INDEX} describes integers "
                           f"({index['count']}, 3): each patch's tile, row and column")


def is_patch_folder(path: Path) -> bool:
    return (Path(path) / INDEX).is_file()
