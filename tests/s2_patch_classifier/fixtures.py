"""Small tiles for the s2-patch-classifier tests, in the real formats.

- :func:`port_crop`: a crop of a real sen2ships port (single-band big-endian GeoTIFFs named
  like the originals, COCO RLE annotations re-encoded for the crop); skipped when the shared
  data is absent. Contains modified Copernicus Sentinel data 2023.
- :func:`synthetic_tile`: a multi-band GeoTIFF stack (band descriptions B2, B3, B4, B8) of
  "water" with bright rectangular "ships" and its ``_label`` raster, for tests that must run
  without the shared data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from components.s2_patch_classifier.data import find_tiles
from tests.conftest import sample

SYNTH_BANDS = ("B2", "B3", "B4", "B8")
TINY = ["--encoder", "resnet14", "--width", "8"]


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE (column-major, starting with background)."""
    flat = mask.T.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return counts


def port_crop(dest: Path, port: str = "casablanca", size: tuple[int, int] = (128, 160)) -> Path:
    """``dest/<port>/`` with the five bands and ``<port>_coco.json`` cropped around its ships."""
    root = sample("s2-ships-sen2ships")
    tile = next(t for t in find_tiles(root / port))
    labels = tile.read_labels()
    rows, cols = np.nonzero(labels)
    h, w = size
    r0 = int(np.clip(np.median(rows) - h // 2, 0, tile.height - h))
    c0 = int(np.clip(np.median(cols) - w // 2, 0, tile.width - w))
    window = Window(c0, r0, w, h)
    out = dest / port
    out.mkdir(parents=True)
    for band, path in tile.band_files.items():
        with rasterio.open(path) as src:
            profile = src.profile.copy()
            data = src.read(1, window=window)
            profile.update(width=w, height=h, transform=src.window_transform(window), tiled=False,
                           blockysize=16, compress="deflate", endianness="big")
            with rasterio.open(out / path.name, "w", **profile) as dst:
                dst.write(data, 1)
    crop = labels[r0:r0 + h, c0:c0 + w]
    from scipy import ndimage

    objects, n = ndimage.label(crop > 0, np.ones((3, 3), bool))
    annotations = [{"id": i, "image_id": 2, "category_id": 1, "iscrowd": 1,
                    "segmentation": {"size": [h, w], "counts": rle_counts(objects == i)}} for i in range(1, n + 1)]
    coco = {"images": [{"id": 2, "width": w, "height": h, "file_name": f"{port}_rgb.tiff"}],
            "categories": [{"id": 1, "name": "vessel"}], "annotations": annotations}
    (out / f"{port}_coco.json").write_text(json.dumps(coco))
    return out


def synthetic_tile(dest: Path, name: str = "T31UDQ_20230801", size: tuple[int, int] = (96, 128), seed: int = 0,
                   bands: tuple[str, ...] = SYNTH_BANDS, labels: bool = True, label_size=None,
                   crs: str = "EPSG:32631") -> Path:
    """``dest/<name>.tif`` (uint16 stack) and ``dest/<name>_label.tif`` (uint8: 0 water, 1 ship,
    2 land on the left edge)."""
    rng = np.random.default_rng(seed)
    h, w = size
    dest.mkdir(parents=True, exist_ok=True)
    truth = np.zeros((h, w), np.uint8)
    truth[:, : w // 6] = 2
    for _ in range(max(3, h * w // 1500)):
        y, x = rng.integers(2, h - 8), rng.integers(w // 6 + 2, w - 8)
        truth[y:y + 3, x:x + 6] = 1
    base = {0: (400, 500, 300, 200), 1: (2200, 2300, 2400, 2600), 2: (900, 1100, 1200, 3000)}
    data = np.zeros((len(bands), h, w), np.uint16)
    for i in range(len(bands)):
        level = np.choose(truth, [base[c][i % 4] for c in (0, 1, 2)])
        data[i] = np.clip(level + rng.normal(0, 40, (h, w)), 0, 65535).astype(np.uint16)
    profile = dict(driver="GTiff", width=w, height=h, count=len(bands), dtype="uint16", crs=crs,
                   transform=from_origin(500000, 5600000, 10, 10), nodata=0)
    tif = dest / f"{name}.tif"
    with rasterio.open(tif, "w", **profile) as ds:
        ds.write(data)
        ds.descriptions = bands
    if labels:
        lh, lw = label_size or (h, w)
        lab = np.zeros((lh, lw), np.uint8)
        lab[:min(h, lh), :min(w, lw)] = truth[:lh, :lw]
        with rasterio.open(dest / f"{name}_label.tif", "w", driver="GTiff", width=lw, height=lh, count=1,
                           dtype="uint8", crs=crs, transform=from_origin(500000, 5600000, 10, 10)) as ds:
            ds.write(lab, 1)
    return tif


def trains_and_records(tmp_path: Path, capsys, name: str, good: str, bad: str, epochs: int = 1,
                       extra: tuple[str, ...] = ()):
    """The service trains with ``--name good`` and records the value in the model's training
    metadata; ``--name bad`` gives one error line naming it, exit 2 and no output folder."""
    from components.s2_patch_classifier import modelio
    from components.s2_patch_classifier.cli import main

    tiles = tmp_path / "tiles"
    synthetic_tile(tiles, "A", size=(96, 128), seed=1)
    common = ["-action", "train", "-i", str(tiles), "-patch_size", "64", "-b", "4", "-epochs", str(epochs),
              "--device", "cpu", *extra] + TINY
    assert main(common + ["-o", str(tmp_path / "m"), f"--{name}", good]) == 0
    _, meta = modelio.load_pytorch(tmp_path / "m" / "model.pt")
    assert meta["training"][name] == float(good)
    capsys.readouterr()
    assert main(common + ["-o", str(tmp_path / "bad"), f"--{name}", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0]
    assert not (tmp_path / "bad").exists()
