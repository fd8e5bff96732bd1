"""Inference speed of tile_classifier against a plain block-by-block PyTorch loop on the same model.

Generates once (and caches) a synthetic full tile: the 12 monthly composites of monthlycomposite
(10980 x 10980 px, the nine TimeSen2Crop bands, uint16, DEFLATE-tiled GeoTIFFs) with a crop mask
(0 = classify): parcels of 20-80 px of the 16 classes cover 40 % of the tile (``--crop-fraction``),
in farmland regions that fill 60 % of it (the rest: forest, mountains, water, towns, as in a real
tile; ``--uniform`` spreads the crop parcels evenly instead). And a model trained by train_lstm
(default architecture: 2 LSTM layers of 64 units) on a synthetic TimeSen2Crop archive.
Then, with the same number of CPU threads for both, on an evenly spread sample of the tile's
512 x 512 blocks (``--sample``), each block timed with every method in turn (the order rotating
from block to block, so that all see the same machine load):

(a) **plain loop**: read the 12 composites of the block, one PyTorch forward pass (eval,
    no_grad) over every pixel of the block, argmax, apply the mask, write the block;
(b) **tile_classifier's block classification** (its BlockReader and Engine): only the pixels to
    classify are read out, single-threaded ONNX Runtime calls on batches of 256 pixels run in
    parallel; the same without the mask, to separate the two gains.

``sample.ratio`` = time of (a) / time of (b) over the same blocks (the sample's crop share is
printed: it may differ from the tile's). Then (c) the whole tile_classifier service runs on the
full tile (block classification with read-ahead, majority filter, Cloud Optimized GeoTIFF,
quicklook, STAC) and is compared with (a) extrapolated to the tile by its pixel count (the plain
loop does the same work on every block, masked or not): ``ratio`` (wall clock) and
``ratio_cpu_time``, the headline figure. (a) and (c) run one after the other, so a shared machine's
changing load affects them differently; the paired sample is the check on that.

Prints one JSON object (seconds, CPU seconds, pixels per second, ratios, whether the 5x target is
met); asserts nothing.

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

from bench.harness import cache_dir, measure  # noqa: E402

TARGET_RATIO = 5.0
BLOCK = 512
# Bump when the generated tile or model change, so that old caches are not reused.
TILE_VERSION = 2


def prepare(size: int, crop_fraction: float, uniform: bool) -> Path:
    """The cached benchmark inputs: mc/ (12 composites), input/ (model .h5 + crop mask)."""
    from components.crop_lstm.train_service import run as train
    from components.crop_lstm.params import TrainParams
    from components.timesen2crop.params import TimeSen2CropParams
    from components.timesen2crop.service import run as load
    from tests.fixtures.timesen2crop_archive import write_archive, write_composites

    layout = "uniform" if uniform else "regions"
    folder = cache_dir() / f"crop-lstm-{size}-{int(crop_fraction * 100)}-{layout}-v{TILE_VERSION}"
    if (folder / "READY").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t = time.perf_counter()
    print(f"generating the benchmark tile in {folder} ...", file=sys.stderr, flush=True)
    comp = write_composites(folder / "mc", size=size, crop_fraction=crop_fraction,
                            region_px=None if uniform else 1500)
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


class PlainLoop:
    """The baseline: every pixel of a block through the PyTorch model, block by block."""

    def __init__(self, model, info, composites, mask_path, out_path: Path):
        import rasterio

        self.model = model.eval()
        self.class_ids = np.asarray(info.class_ids, np.uint8)
        self.comps = [rasterio.open(c.path) for c in composites]
        self.mask = rasterio.open(mask_path)
        first = self.comps[0]
        self.out = rasterio.open(out_path, "w", driver="GTiff", width=first.width, height=first.height, count=1,
                                 dtype="uint8", crs=first.crs, transform=first.transform, nodata=255, tiled=True)

    def __call__(self, win) -> int:
        import torch

        with torch.no_grad():
            data = np.stack([ds.read(window=win) for ds in self.comps])  # [T, F, h, w]
            n_t, n_f, h, w = data.shape
            x = torch.from_numpy(np.ascontiguousarray(data.reshape(n_t, n_f, h * w).transpose(2, 0, 1), np.float32))
            labels = self.class_ids[self.model(x).argmax(1).numpy()]
        labels[self.mask.read(1, window=win).ravel() != 0] = 255
        self.out.write(labels.reshape(1, h, w), window=win)
        return h * w

    def close(self) -> None:
        for ds in self.comps + [self.mask, self.out]:
            ds.close()


class Ours:
    """tile_classifier's block classification (BlockReader + Engine), one block at a time."""

    def __init__(self, model, info, composites, mask_path, out_path: Path, threads: int):
        import rasterio

        from components.crop_lstm.classify_service import BlockReader, Engine
        from components.crop_lstm.params import ClassifyParams

        self.engine = Engine(model, info, ClassifyParams(threads=threads, engine="onnxruntime"), out_path.parent)
        self.reader = BlockReader(composites, mask_path)
        first = rasterio.open(composites[0].path)
        self.out = rasterio.open(out_path, "w", driver="GTiff", width=first.width, height=first.height, count=1,
                                 dtype="uint8", crs=first.crs, transform=first.transform, nodata=255, tiled=True)
        first.close()

    def __call__(self, win) -> int:
        win, idx, px, _ = self.reader.read(win)
        h, w = int(win.height), int(win.width)
        labels = np.full(h * w, 255, np.uint8)
        if idx is not None:
            labels[idx] = self.engine(px)
        self.out.write(labels.reshape(1, h, w), window=win)
        return 0 if idx is None else len(idx)

    def close(self) -> None:
        self.reader.close()
        self.engine.close()
        self.out.close()


def paired(runners: dict, wins) -> dict:
    """Time each runner on each block, interleaved (the order rotates per block), so that all of them
    see the same machine load."""
    names = list(runners)
    figures = {n: {"seconds": 0.0, "cpu_seconds": 0.0, "pixels": 0} for n in names}
    for i, win in enumerate(wins):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            px = runners[name](win)
            figures[name]["seconds"] += time.perf_counter() - t
            figures[name]["cpu_seconds"] += time.process_time() - c
            figures[name]["pixels"] += px
        print(f"block {i + 1}/{len(wins)}: " + ", ".join(f"{n} {figures[n]['seconds']:.1f} s" for n in names),
              file=sys.stderr, flush=True)
    for f in figures.values():
        f["pixels_per_second"] = round(f["pixels"] / f["seconds"], 1) if f["seconds"] else 0.0
        f["seconds"], f["cpu_seconds"] = round(f["seconds"], 2), round(f["cpu_seconds"], 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10980, help="tile size in pixels (10980: a full Sentinel-2 tile)")
    ap.add_argument("--crop-fraction", type=float, default=0.4, help="share of the tile under the crop mask")
    ap.add_argument("--uniform", action="store_true", help="crop parcels spread evenly, no farmland regions")
    ap.add_argument("--sample", type=float, default=0.05, help="share of the blocks timed for the plain loop")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads for both")
    ap.add_argument("--skip-full", action="store_true", help="time the sample blocks only")
    args = ap.parse_args(argv)

    import rasterio
    import torch

    from components.common.logs import setup_logging
    from components.crop_lstm.classify_service import windows
    from components.crop_lstm.composites import find_composites, find_model_and_mask
    from components.crop_lstm.h5io import load_model

    setup_logging()
    torch.set_num_threads(args.threads)
    folder = prepare(args.size, args.crop_fraction, args.uniform)
    h5, mask = find_model_and_mask(folder / "input")
    model, info = load_model(h5)
    composites, grid, _ = find_composites(folder / "mc", info)
    wins = windows(grid.width, grid.height, BLOCK)
    k = max(1, round(len(wins) * args.sample))
    sample = [wins[i] for i in np.unique(np.linspace(0, len(wins) - 1, k).round().astype(int))]
    with rasterio.open(mask) as ds:
        selected = ds.read(1) == 0
    empty_blocks = sum(not selected[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width].any() for w in wins)
    report = {"tile": {"size": args.size, "months": len(composites), "bands": len(info.band_names),
                       "crop_share": round(float(selected.mean()), 4), "blocks": len(wins),
                       "blocks_without_crop": int(empty_blocks), "sample_blocks": len(sample),
                       "layout": "uniform" if args.uniform else "farmland regions"},
              "model": {**{k: v for k, v in model.config.to_dict().items() if k != "dropout"}},
              "threads": args.threads, "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="crop-bench-") as tmp:
        tmp = Path(tmp)
        runners = {"plain_torch_loop": PlainLoop(model, info, composites, mask, tmp / "plain.tif"),
                   "tile_classifier": Ours(model, info, composites, mask, tmp / "ours.tif", args.threads),
                   "tile_classifier_without_mask": Ours(model, info, composites, None, tmp / "all.tif", args.threads)}
        try:
            figures = paired(runners, sample)
        finally:
            for r in runners.values():
                r.close()
        with rasterio.open(tmp / "ours.tif") as a, rasterio.open(tmp / "plain.tif") as b:
            agree = [float((a.read(1, window=w) == b.read(1, window=w)).mean()) for w in sample]
        base, ours, ours_all = (figures[k] for k in runners)
        report["sample"] = {
            **figures, "classified_share": round(ours["pixels"] / base["pixels"], 4),
            "ratio": round(base["seconds"] / ours["seconds"], 2),
            "ratio_cpu_time": round(base["cpu_seconds"] / ours["cpu_seconds"], 2),
            "ratio_without_mask": round(base["seconds"] / ours_all["seconds"], 2),
            "maps_agree": round(float(np.mean(agree)), 6)}
        report["ratio"] = report["sample"]["ratio"]
        if not args.skip_full:
            # the plain loop's time per block does not depend on the mask: extrapolate it by pixels
            estimate = base["seconds"] / base["pixels"] * grid.width * grid.height
            estimate_cpu = base["cpu_seconds"] / base["pixels"] * grid.width * grid.height
            # the command in a child process of its own, so that its peak memory is its own
            child = measure([sys.executable, "-m", "components.crop_lstm.classify_cli", "--input_dir",
                             str(folder / "input"), "--mc_dir", str(folder / "mc"), "--output_dir",
                             str(tmp / "service"), "--threads", str(args.threads)], log=tmp / "service.log")
            if child["rc"] != 0:
                raise SystemExit(f"tile_classifier failed:\n{child['tail']}")
            full, full_cpu = child["seconds"], child["cpu_s"]
            record = json.loads((tmp / "service" / "run.json").read_text())
            report["full_tile"] = {"tile_classifier_seconds": round(full, 1),
                                   "tile_classifier_cpu_seconds": round(full_cpu, 1),
                                   "tile_classifier_peak_mib": child["peak_mib"],
                                   "classification_seconds": record["timings_s"].get("classify blocks"),
                                   "metrics": record["outputs"]["metrics"],
                                   "plain_torch_loop_estimate_seconds": round(estimate, 1),
                                   "plain_torch_loop_estimate_cpu_seconds": round(estimate_cpu, 1),
                                   "ratio": round(estimate / full, 2), "ratio_cpu_time": round(estimate_cpu / full_cpu, 2)}
            report["ratio"] = report["full_tile"]["ratio"]
    report["target_ratio"] = TARGET_RATIO
    report["meets_target"] = report["ratio"] >= TARGET_RATIO
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
