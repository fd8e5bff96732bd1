"""Training throughput of the three PyTorch trainers, through their own train functions, on the
CPU and, where CUDA is present, on the GPU (with its peak memory).

- ``train_lstm``: ``components.crop_lstm.training.fit`` on a synthetic TimeSen2Crop-shaped set
  (12 monthly steps x 9 bands, 16 classes, default model: 2 LSTM layers of 64 units), at the
  seed's batch 32 and in the larger-batch mode (``batch_scaling`` 32: batch 1024); on the GPU each
  also with its steps replayed as a CUDA graph (``graphed``, :mod:`components.crop_lstm.graphed`);
- ``aqgan-train``: ``components.aq_downscaling.training.train`` with the default configuration
  (8 x 8 low-resolution frames to 64 x 64, 5 critic steps per generator step), batch 128 (the
  default) on the GPU, 32 on the CPU;
- ``s2-patch-classifier``: ``components.s2_patch_classifier.train.train``, U-Net ResNet-50 on
  64-px patches of 13 bands, batch 16 (on the GPU also ``graphed``) and ``batch_scaling`` 16
  (batch 256);
- its ``-action pretrain``: ``components.s2_patch_classifier.pretrain.pretrain`` (MoCo v2 of the
  ResNet-50 encoder, two views per patch), batch 16 and 256.

Samples per second are those of the epochs after the first (which pays for start-up: cuDNN
autotuning, allocations), from the trainers' own per-epoch times (each ends with the epoch's one
read of its loss sums, so queued GPU work is counted). The U-Net figures include its per-epoch
validation on 2 % of the patches. Prints one JSON object per case, then a summary; asserts nothing.

``--full`` adds item 4's check on a GPU: ``train_lstm`` on a TimeSen2Crop-size set (1.2 M samples,
50 epochs) in the larger-batch mode, which should finish within 10 minutes.

    python bench/gpu_training.py            # CPU cases, then GPU cases when CUDA is present (< 5 min on a GPU)
    python bench/gpu_training.py --full     # + the 1.2 M x 50 epochs run (GPU only)
    python bench/gpu_training.py --skip-cpu # GPU cases only
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.aq_downscaling.config import load_config  # noqa: E402
from components.aq_downscaling.training import TrainData, arch_of  # noqa: E402
from components.aq_downscaling.training import train as aq_train  # noqa: E402
from components.crop_lstm.model import CropLSTM, ModelConfig, normalisation  # noqa: E402
from components.crop_lstm.training import fit  # noqa: E402
from components.s2_patch_classifier.patches import PatchSet  # noqa: E402
from components.s2_patch_classifier.pretrain import pretrain  # noqa: E402
from components.s2_patch_classifier.train import TrainConfig  # noqa: E402
from components.s2_patch_classifier.train import train as unet_train  # noqa: E402

CLASSES = 16
FULL_SAMPLES = 1_200_000
FULL_EPOCHS = 50


def crop_set(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.standard_normal((n, 12, 9), dtype=np.float32)
    x *= 800
    x += 1500 + (y * 60)[:, None, None].astype(np.float32)  # classes differ in level
    return x, y


def per_second(samples: int, seconds: list[float]) -> float:
    later = seconds[1:] or seconds
    return round(samples / statistics.median(later), 1)


def gpu_peak(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    return {"peak_gpu_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 3)}


def reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def lstm_case(device, n, epochs, batch_size, scaling, x=None, y=None, graphed=False) -> dict:
    if x is None:
        x, y = crop_set(n)
    reset(device)
    torch.manual_seed(0)
    model = CropLSTM(ModelConfig(9, 12, CLASSES))
    model.set_normalisation(*normalisation(x[:100_000]))
    t0 = time.perf_counter()
    hist = fit(model, x, y, None, None, epochs=epochs, batch_size=batch_size, learning_rate=1e-3,
               class_weights=False, seed=0, device=device, class_ids=list(range(CLASSES)), batch_scaling=scaling,
               graphed=graphed)
    wall = time.perf_counter() - t0
    return {"trainer": "train_lstm", "device": device.type, "batch": batch_size * scaling, "batch_scaling": scaling,
            "graphed": graphed,
            "samples": len(x), "epochs": epochs, "samples_per_s": per_second(len(x), [e["seconds"] for e in hist.epochs]),
            "seconds": round(wall, 1), "final_loss": round(hist.epochs[-1]["loss"], 4), **gpu_peak(device)}


def aq_case(device, n, epochs, batch_size) -> dict:
    cfg = load_config(overrides=[f"training.epochs={epochs}", f"training.batch_size={batch_size}",
                                 f"training.checkpoint_every={epochs}", f"training.device={device.type}"])
    lr_v, hr_v, st_v = cfg.inputs.low_res, cfg.outputs.high_res, cfg.inputs.high_res_static
    g = torch.Generator().manual_seed(0)
    (h, w), f = cfg.model.input_frame, cfg.factor
    data = TrainData(torch.randn(n, len(lr_v), h, w, generator=g), torch.randn(n, len(hr_v), h * f, w * f, generator=g),
                     torch.randn(4, len(st_v), h * f, w * f, generator=g), torch.arange(n) % 4, {"variables": {}})
    reset(device)
    with tempfile.TemporaryDirectory() as ckpt:
        t0 = time.perf_counter()
        _, history = aq_train(cfg, data, arch_of(cfg, lr_v, hr_v, st_v), Path(ckpt), False, device)
        wall = time.perf_counter() - t0
    return {"trainer": "aqgan-train", "device": device.type, "batch": batch_size, "samples": n, "epochs": epochs,
            "samples_per_s": per_second(n, [r["seconds"] for r in history]), "seconds": round(wall, 1),
            **gpu_peak(device)}


UNET_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
UNET_STATS = {"low": [0.0] * 13, "high": [10000.0] * 13, "mean": [1500.0] * 13, "std": [400.0] * 13}


def patch_images(n: int) -> np.ndarray:
    images = np.random.default_rng(0).standard_normal((n, len(UNET_BANDS), 64, 64), dtype=np.float32)
    images *= 400  # float32 throughout: GiBs on a GPU run
    images += 1500
    return images


def unet_case(device, n, epochs, batch_size, scaling, graphed=False) -> dict:
    labels = np.zeros((n, 64, 64), np.uint8)
    labels[::2, 20:30, 16:40] = 1
    ps = PatchSet(Path("."), {"classes": [0, 1], "bands": UNET_BANDS, "stats": UNET_STATS}, patch_images(n), labels)
    reset(device)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, batch_scaling=scaling, lr=1e-4, val_fraction=0.02,
                      device=device.type, encoder="resnet50", width=64, graphed=graphed)
    t0 = time.perf_counter()
    res = unet_train(ps, cfg)
    wall = time.perf_counter() - t0
    steps = -(-res.metrics["training_patches"] // (batch_size * scaling))
    return {"trainer": "s2-patch-classifier", "device": device.type, "batch": batch_size * scaling,
            "batch_scaling": scaling, "graphed": graphed, "samples": n, "epochs": epochs,
            "samples_per_s": per_second(steps * batch_size * scaling, [h["seconds"] for h in res.history]),
            "seconds": round(wall, 1), **gpu_peak(device)}


def pretrain_case(device, n, epochs, batch_size) -> dict:
    images = patch_images(n)
    reset(device)
    t0 = time.perf_counter()
    _, history = pretrain(images, UNET_STATS, encoder="resnet50", width=64, epochs=epochs, batch_size=batch_size,
                          lr=1e-4, device=device)
    wall = time.perf_counter() - t0
    return {"trainer": "s2-patch-classifier pretrain", "device": device.type, "batch": batch_size, "samples": n,
            "epochs": epochs, "samples_per_s": per_second(n // batch_size * batch_size, [h["seconds"] for h in history]),
            "seconds": round(wall, 1), **gpu_peak(device)}


def cpu_cases() -> list:
    cpu = torch.device("cpu")
    return [
        lambda: lstm_case(cpu, 8192, 3, 32, 1),
        lambda: lstm_case(cpu, 32768, 3, 32, 32),
        lambda: aq_case(cpu, 96, 2, 32),
        lambda: unet_case(cpu, 161, 3, 16, 1),  # 10 steps an epoch: enough to time the steps, not start-up
        lambda: pretrain_case(cpu, 96, 3, 16),
    ]


def gpu_cases() -> list:
    gpu = torch.device("cuda")
    return [
        lambda: lstm_case(gpu, 131072, 3, 32, 1),
        lambda: lstm_case(gpu, 131072, 3, 32, 1, graphed=True),
        lambda: lstm_case(gpu, 1048576, 3, 32, 32),
        lambda: lstm_case(gpu, 1048576, 3, 32, 32, graphed=True),
        lambda: aq_case(gpu, 5120, 3, 128),
        lambda: unet_case(gpu, 4096, 3, 16, 1),
        lambda: unet_case(gpu, 4096, 3, 16, 1, graphed=True),
        lambda: unet_case(gpu, 16384, 3, 16, 16),
        lambda: pretrain_case(gpu, 4096, 3, 16),
        lambda: pretrain_case(gpu, 16384, 3, 256),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="also train_lstm on 1.2 M samples x 50 epochs (GPU)")
    ap.add_argument("--skip-cpu", action="store_true", help="GPU cases only")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = []

    def run(case):
        row = case()
        print(json.dumps(row), flush=True)
        results.append(row)

    if not args.skip_cpu:
        for case in cpu_cases():
            run(case)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.backends.cudnn.benchmark = True
        for case in gpu_cases():
            run(case)
        gpu = {"device": torch.cuda.get_device_name(0)}
        if args.full:
            x, y = crop_set(FULL_SAMPLES)
            row = lstm_case(torch.device("cuda"), FULL_SAMPLES, FULL_EPOCHS, 32, 32, x, y)
            row["within_10_min"] = row["seconds"] <= 600
            row["case"] = "full"
            print(json.dumps(row), flush=True)
            results.append(row)
    else:
        gpu = "GPU: not measured (no CUDA)"
        print(gpu, flush=True)
    print(json.dumps({"torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "gpu": gpu,
                      "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
