"""COCO annotations rasterised onto a tile's pixel grid.

A COCO file describes one tile: every annotation is burnt into a label raster of the tile's
size with the value of its ``category_id`` (1-255; later annotations overwrite earlier ones).
Three segmentation encodings are read:

- polygons: ``[[x1, y1, x2, y2, ...], ...]`` in pixel coordinates (origin at the top-left corner
  of the top-left pixel), rasterised with GDAL (a pixel is in when its centre is);
- uncompressed RLE: ``{"counts": [n0, n1, ...], "size": [h, w]}``, runs alternating background
  and object in column-major order, starting with background (the COCO convention, used by
  CVAT exports such as the sen2ships annotations);
- compressed RLE: ``counts`` as the LEB128-like string of the COCO API.

An annotation whose ``size`` (or image width/height) differs from the tile is an error: the
labels must be drawn on the tile's grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.common.errors import ServiceError


def is_coco(path: Path) -> bool:
    """True for a JSON file holding COCO ``annotations``."""
    try:
        with open(path) as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return '"annotations"' in head


def load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ServiceError(f"COCO file {Path(path).name} is not readable JSON: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ServiceError(f"COCO file {Path(path).name} has no 'annotations' list")
    return data


def rasterise(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The label raster (uint8, ``shape`` = (rows, cols)) of the COCO file ``path``."""
    out = np.zeros(shape, np.uint8)
    for cat, mask in _masks(path, shape):
        out[mask] = cat
    return out


def instances(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """One id per annotation (int32, 1..n in file order, 0 = none); later ones on top."""
    out = np.zeros(shape, np.int32)
    for i, (_, mask) in enumerate(_masks(path, shape), 1):
        out[mask] = i
    return out


def _masks(path: Path, shape: tuple[int, int]):
    """(category, boolean mask) of each annotation, checked against the tile's shape."""
    data = load(path)
    name = Path(path).name
    rows, cols = shape
    sizes = {img.get("id"): (img.get("height"), img.get("width")) for img in data.get("images", [])
             if isinstance(img, dict)}
    for i, ann in enumerate(data["annotations"]):
        where = f"COCO file {name}, annotation {ann.get('id', i) if isinstance(ann, dict) else i}"
        if not isinstance(ann, dict) or "segmentation" not in ann:
            raise ServiceError(f"{where}: no segmentation")
        cat = ann.get("category_id")
        if not isinstance(cat, int) or not 1 <= cat <= 255:
            raise ServiceError(f"{where}: category_id {cat!r} is not a class id in 1-255")
        seg = ann["segmentation"]
        if isinstance(seg, dict):
            size = seg.get("size")
            if not (isinstance(size, list) and len(size) == 2):
                raise ServiceError(f"{where}: RLE without a [height, width] size")
            if tuple(size) != (rows, cols):
                raise ServiceError(f"labels of another size: {where} is {size[0]}x{size[1]} px "
                                   f"(rows x cols), the tile is {rows}x{cols}")
            mask = _decode_rle(seg["counts"], rows, cols, where)
        elif isinstance(seg, list):
            img_size = sizes.get(ann.get("image_id"))
            if img_size and all(img_size) and tuple(img_size) != (rows, cols):
                raise ServiceError(f"labels of another size: {where} belongs to an image of "
                                   f"{img_size[0]}x{img_size[1]} px (rows x cols), the tile is {rows}x{cols}")
            mask = _polygons(seg, rows, cols, where)
        else:
            raise ServiceError(f"{where}: segmentation is neither polygons nor RLE")
        yield cat, mask


def _polygons(seg: list, rows: int, cols: int, where: str) -> np.ndarray:
    from rasterio.features import rasterize
    from rasterio.transform import Affine

    shapes = []
    for poly in seg:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            raise ServiceError(f"{where}: a polygon needs at least 3 (x, y) pairs")
        xy = np.asarray(poly, float).reshape(-1, 2)
        ring = [tuple(p) for p in xy] + [tuple(xy[0])]
        shapes.append(({"type": "Polygon", "coordinates": [ring]}, 1))
    return rasterize(shapes, out_shape=(rows, cols), transform=Affine.identity(), fill=0,
                     dtype="uint8").astype(bool)


def _decode_rle(counts, rows: int, cols: int, where: str) -> np.ndarray:
    if isinstance(counts, str):
        counts = _counts_from_string(counts)
    counts = np.asarray(counts, np.int64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() != rows * cols:
        raise ServiceError(f"{where}: RLE counts do not add up to {rows}x{cols} pixels")
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape(cols, rows).T  # column-major


def _counts_from_string(s: str) -> list[int]:
    """The COCO API's compressed RLE string (``rleFrString``) to run lengths."""
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
