"""Score the S2-CD change-detection kernel on the Onera Satellite Change Detection (OSCD) labels.

    python bench/oscd_eval.py ROOT [--cities a,b] [--param name=value ...] [--output scores.json]

``ROOT`` has the OSCD layout: ``images/<city>/imgs_1|imgs_2/*_B01.tif ... *_B12.tif, *_B8A.tif``
(one GeoTIFF per band and date, Level-1C DN) and ``train_labels/<city>/cm/<city>-cm.tif``.
Every city folder that has both is scored with the same fixed parameters: the defaults of
``S2ChangeParams`` unless ``--param`` overrides some (for ablations; the figures reported in the
README use none). The run goes through ``engine.detect_changes``, the code path of the service:
normalisation, filtered difference, noise model, chi-squared test, region filter, K-means.

Bands are read on the grid of the label (the 10 m grid); coarser bands are upsampled by nearest
neighbour, like S2-preprocess's default. Reflectance = DN / 10000 (these products predate the
processing-baseline offset). A pixel with DN 0 in any band of either date has no data and counts
as predicted "no change". Labels: OSCD's ``-cm.tif`` files hold 1 (no change) and 2 (change);
0/1 and 0/255 encodings are read too.

Printed (JSON): per city and pooled (confusion counts summed over the cities) precision, recall,
F1 and Cohen's kappa of the binary change mask (changed = any change class).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.errors import ServiceError  # noqa: E402
from components.common.sentinel2 import file_code  # noqa: E402
from components.s2_change_detection.engine import (ArraySink, ArraySource, DetectionConfig,  # noqa: E402
                                                   detect_changes)
from components.s2_change_detection.params import S2ChangeParams  # noqa: E402

QUANTIFICATION = 10000.0


def cities(root: Path) -> list[str]:
    """City folders with images of both dates and a change label."""
    found = []
    for city_dir in sorted((root / "images").glob("*")):
        city = city_dir.name
        if (city_dir / "imgs_1").is_dir() and (city_dir / "imgs_2").is_dir() and label_path(root, city).is_file():
            found.append(city)
    return found


def label_path(root: Path, city: str) -> Path:
    return root / "train_labels" / city / "cm" / f"{city}-cm.tif"


def read_label(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            label = ds.read(1)
    values = set(np.unique(label).tolist())
    for encoding, change in (({0, 1}, 1), ({1, 2}, 2), ({0, 255}, 255)):
        if values <= encoding:
            return label == change
    raise ValueError(f"{path}: unexpected label values {sorted(values)}")


def read_bands(folder: Path, bands: tuple[str, ...], shape: tuple[int, int]) -> np.ndarray:
    """Reflectance (bands, rows, cols) on the label grid."""
    out = np.empty((len(bands),) + shape, np.float32)
    for i, band in enumerate(bands):
        files = sorted(folder.glob(f"*_{file_code(band)}.tif"))
        if not files:
            raise FileNotFoundError(f"no {file_code(band)} file in {folder}")
        with rasterio.open(files[0]) as ds:
            if ds.shape == shape:
                dn = ds.read(1)
            else:
                dn = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
        band_out = dn.astype(np.float32) / QUANTIFICATION
        band_out[dn == 0] = np.nan
        out[i] = band_out
    return out


def confusion(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    return {"tp": int((pred & truth).sum()), "fp": int((pred & ~truth).sum()),
            "fn": int((~pred & truth).sum()), "tn": int((~pred & ~truth).sum())}


def scores(c: dict[str, int]) -> dict[str, float]:
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    kappa = (po - pe) / (1 - pe) if pe < 1 else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "kappa": round(kappa, 4), "overall_accuracy": round(po, 4)}


def evaluate_city(root: Path, city: str, params: S2ChangeParams) -> dict:
    truth = read_label(label_path(root, city))
    x1 = read_bands(root / "images" / city / "imgs_1", params.bands, truth.shape)
    x2 = read_bands(root / "images" / city / "imgs_2", params.bands, truth.shape)
    valid = np.isfinite(x1).all(0) & np.isfinite(x2).all(0)
    x1 = np.nan_to_num(x1)
    x2 = np.nan_to_num(x2)
    sink = ArraySink(truth.shape)
    t0 = time.perf_counter()
    detection = detect_changes(ArraySource(x1, x2, valid), DetectionConfig.from_params(params), sink)
    seconds = time.perf_counter() - t0
    pred = (sink.classes > 0) & (sink.classes != 255)
    counts = confusion(pred, truth)
    return {**scores(counts), **counts, "pixels": int(truth.size),
            "changed_percent_truth": round(100.0 * truth.mean(), 3),
            "changed_percent_predicted": round(100.0 * pred.mean(), 3),
            "valid_percent": round(detection.valid_percent, 3), "seconds": round(seconds, 3)}


def evaluate(root: Path, params: S2ChangeParams, only: list[str] | None = None) -> dict:
    names = cities(root)
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise ValueError(f"no city {', '.join(missing)} under {root} (found: {', '.join(names)})")
        names = [c for c in names if c in only]
    if not names:
        raise ValueError(f"no OSCD city under {root} (expected images/<city>/imgs_1|imgs_2 and "
                         f"train_labels/<city>/cm/<city>-cm.tif)")
    per_city = {city: evaluate_city(root, city, params) for city in names}
    total = {k: sum(r[k] for r in per_city.values()) for k in ("tp", "fp", "fn", "tn")}
    return {"dataset": str(root), "method": "S2-CD change vector analysis (engine.detect_changes)",
            "params": params.as_dict(), "cities": per_city, "pooled": {**scores(total), **total,
                                                                      "cities": len(per_city)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="OSCD root holding images/ and train_labels/")
    parser.add_argument("--cities", default="", help="comma-separated subset of cities (default: all)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override one S2-CD parameter (ablations only)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    try:
        overrides = dict(p.split("=", 1) for p in args.param)
        params = S2ChangeParams.from_strings(overrides)
        result = evaluate(args.root, params, [c for c in args.cities.split(",") if c])
    except (ValueError, FileNotFoundError, ServiceError) as e:
        print(f"oscd_eval: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
