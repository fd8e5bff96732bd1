"""Inference speed of tile_classifier against a plain block-by-block PyTorch loop on the same model.

Generates once (and caches) a synthetic full tile: the 12 monthly composites of monthlycomposite
(10980 x 10980 px, the nine TimeSen2Crop bands, uint16, DEFLATE-tiled GeoTIFFs) with a crop mask
(rectangular parcels of the 16 classes on 40 % of the tile, 0 = classify), and a model trained by
train_lstm (default architecture: 2 LSTM layers of 64 units) on a synthetic TimeSen2Crop archive.
Then, with the same number of CPU threads for both:

(a) **plain loop**: for each 512 x 512 block, read the 12 composites, one PyTorch forward pass
    (eval, no_grad) over every pixel of the block, argmax, apply the mask, write the block - on an
    evenly spread sample of blocks (``--sample``), extrapolated to the tile;
(b) **tile_classifier's block classification** on the same sample blocks (only the pixels to
    classify; single-threaded ONNX Runtime calls on batches of 256 pixels, in parallel; blocks
    read ahead), with and without the mask, for a like-for-like ratio;
(c) **the whole tile_classifier service** on the full tile (classification, majority filter,
    Cloud Optimized GeoTIFF, quicklook, STAC).

Prints one JSON object (seconds, pixels per second, ratios, whether the 5x target is met); asserts
nothing. ``ratio_full_tile`` = (a) extrapolated / (c).

    python bench/crop_lstm.py                  # full tile (first run generates it: ~13 GB, minutes)
    python bench/crop_lstm.py --size 2048      # quick try
    python bench/crop_lstm.py --skip-full      # sample blocks only

The cache lives in ``$EO_BENCH_CACHE`` or ``~/.cache/eo-kfp-bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_RATIO = 5.0
BLOCK = 512
# Bump when the generated tile or model change, so that old caches are not reused.
TILE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("EO_BENCH_CACHE", Path.home() / ".cache" / "eo-kfp-bench"))


def prepare(size: int, crop_fraction: float) -> Path:
    """The cached benchmark inputs: mc/ (12 composites), input/ (model .h5 + crop mask)."""
    from components.crop_lstm.train_service import run as train
    from components.crop_lstm.params import TrainParams
    from components.timesen2crop.params import TimeSen2CropParams
    from components.timesen2crop.service import run as load
    from tests.fixtures.timesen2crop_archive import write_archive, write_composites

    folder = cache_dir() / f"crop-lstm-{size}-{int(crop_fraction * 100)}-v{TILE_VERSION}"
    if (folder / "READY").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t = time.perf_counter()
    print(f"generating the benchmark tile in {folder} ...", file=sys.stderr, flush=True)
    comp = write_composites(folder / "mc", size=size, crop_fraction=crop_fraction)
    work = folder / "training"
    archive = write_archive(work / "archive", tiles=("33UVP", "33UWP", "33TVN"), classes=tuple(range(16)),
                            per_class=40, seed=21)
    load(str(archive), TimeSen2CropParams.from_strings({"val_tiles": "33TVN"}), str(work / "arrays"))
    train(str(work / "arrays"), TrainParams.from_strings({"n_epochs": 8, "val": str(work / "arrays" / "val")}),
          str(work / "model"))
    (folder / "input").mkdir()
    shutil.copy(work / "model" / "crop_lstm.h5", folder / "input")
    shutil.move(str(comp["mask"]), folder / "input" / comp["mask"].name)
    (folder / "READY").write_text(f"generated in {time.perf_counter() - t:.0f} s\n")
    return folder


def plain_loop(model, info, composites, mask_path, wins, out_path: Path) -> dict:
    """The baseline: every pixel of each block through the PyTorch model, block by block."""
    import rasterio
    import torch

    class_ids = np.asarray(info.class_ids, np.uint8)
    comps = [rasterio.open(c.path) for c in composites]
    mask = rasterio.open(mask_path)
    profile = {"driver": "GTiff", "width": comps[0].width, "height": comps[0].height, "count": 1, "dtype": "uint8",
               "crs": comps[0].crs, "transform": comps[0].transform, "nodata": 255, "tiled": True}
    t, c = time.perf_counter(), time.process_time()
    pixels = 0
    model.eval()
    with rasterio.open(out_path, "w", **profile) as out, torch.no_grad():
        for win in wins:
            data = np.stack([ds.read(window=win) for ds in comps])  # [T, F, h, w]
            n_t, n_f, h, w = data.shape
            x = torch.from_numpy(np.ascontiguousarray(data.reshape(n_t, n_f, h * w).transpose(2, 0, 1), np.float32))
            labels = class_ids[model(x).argmax(1).numpy()]
            labels[mask.read(1, window=win).ravel() != 0] = 255
            out.write(labels.reshape(1, h, w), window=win)
            pixels += h * w
    for ds in comps + [mask]:
        ds.close()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "pixels": pixels,
            "pixels_per_second": round(pixels / wall, 1)}


def ours_on_blocks(model, info, composites, mask_path, grid, wins, out_path: Path, threads: int) -> dict:
    from components.crop_lstm.classify_service import BlockReader, Engine, classify_blocks
    from components.crop_lstm.params import ClassifyParams

    engine = Engine(model, info, ClassifyParams(threads=threads, engine="onnxruntime"), out_path.parent)
    reader = BlockReader(composites, mask_path)
    t, c = time.perf_counter(), time.process_time()
    try:
        counts = classify_blocks(reader, engine, grid, BLOCK, out_path, wins)
    finally:
        reader.close()
        engine.close()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "classified_pixels": counts["classified"],
            "pixels_per_second_classified": round(counts["classified"] / wall, 1),
            "inference_seconds": counts["inference_seconds"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10980, help="tile size in pixels (10980: a full Sentinel-2 tile)")
    ap.add_argument("--crop-fraction", type=float, default=0.4, help="share of parcels under the crop mask")
    ap.add_argument("--sample", type=float, default=0.05, help="share of the blocks timed for the plain loop")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads for both")
    ap.add_argument("--skip-full", action="store_true", help="time the sample blocks only")
    args = ap.parse_args(argv)

    import torch

    from components.common.logs import setup_logging
    from components.crop_lstm.classify_service import run, windows
    from components.crop_lstm.composites import find_composites, find_model_and_mask
    from components.crop_lstm.h5io import load_model
    from components.crop_lstm.params import ClassifyParams

    setup_logging()
    torch.set_num_threads(args.threads)
    folder = prepare(args.size, args.crop_fraction)
    h5, mask = find_model_and_mask(folder / "input")
    model, info = load_model(h5)
    composites, grid, _ = find_composites(folder / "mc", info)
    wins = windows(grid.width, grid.height, BLOCK)
    k = max(1, round(len(wins) * args.sample))
    sample = [wins[i] for i in np.unique(np.linspace(0, len(wins) - 1, k).round().astype(int))]
    report = {"tile": {"size": args.size, "months": len(composites), "bands": len(info.band_names),
                       "blocks": len(wins), "sample_blocks": len(sample)},
              "model": {**{k: v for k, v in model.config.to_dict().items() if k != "dropout"}},
              "threads": args.threads, "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="crop-bench-") as tmp:
        tmp = Path(tmp)
        ours = ours_on_blocks(model, info, composites, mask, grid, sample, tmp / "ours.tif", args.threads)
        base = plain_loop(model, info, composites, mask, sample, tmp / "plain.tif")
        ours_all = ours_on_blocks(model, info, composites, None, grid, sample, tmp / "ours_all.tif", args.threads)
        import rasterio

        with rasterio.open(tmp / "ours.tif") as a, rasterio.open(tmp / "plain.tif") as b:
            agree = [float((a.read(1, window=w) == b.read(1, window=w)).mean()) for w in sample]
        report["sample"] = {
            "plain_torch_loop": base, "tile_classifier_blocks": ours, "tile_classifier_blocks_without_mask": ours_all,
            "classified_share": round(ours["classified_pixels"] / base["pixels"], 4),
            "ratio": round(base["seconds"] / ours["seconds"], 2),
            "ratio_cpu_time": round(base["cpu_seconds"] / ours["cpu_seconds"], 2),
            "ratio_without_mask": round(base["seconds"] / ours_all["seconds"], 2),
            "maps_agree": round(float(np.mean(agree)), 6)}
        report["ratio"] = report["sample"]["ratio"]
        if not args.skip_full:
            estimate = base["seconds"] / len(sample) * len(wins)
            t = time.perf_counter()
            result = run(str(folder / "input"), str(folder / "mc"), ClassifyParams(threads=args.threads),
                         str(tmp / "service"))
            full = time.perf_counter() - t
            report["full_tile"] = {"tile_classifier_seconds": round(full, 1),
                                   "classification_seconds": json.loads(Path(result.run_record).read_text())
                                   ["timings_s"].get("classify blocks"),
                                   "metrics": result.metrics,
                                   "plain_torch_loop_estimate_seconds": round(estimate, 1),
                                   "ratio_full_tile": round(estimate / full, 2)}
            report["ratio"] = report["full_tile"]["ratio_full_tile"]
    report["target_ratio"] = TARGET_RATIO
    report["meets_target"] = report["ratio"] >= TARGET_RATIO
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
