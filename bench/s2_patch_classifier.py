"""CPU inference speed of s2-patch-classifier against a plain PyTorch loop on the same model.

The model is the default U-Net with a ResNet-50 encoder (width 64), 5 bands, 2 classes, with
random weights (this measures speed, not accuracy). The tile is synthetic, ``--size`` pixels
square; windows of ``--patch`` pixels overlap by ``--overlap``. Every engine runs the same
windows through the same blending code (``predict._predict_rows``), so only the network
evaluation differs:

- ``plain``: the model as trained, ``model.eval()``, ``torch.no_grad()``, one window at a time,
  fp32 (a plain torch loop);
- ``default``: what ``-action predict`` uses for a PyTorch model file on CPU (``--engine auto``):
  the file saved and opened with ``open_predictor`` (``open_s``: loading, the engine's check);
- ``onnxruntime``: ``--engine onnxruntime``: the file exported to ONNX into an empty cache and
  checked (in ``open_s``), ONNX Runtime fp32;
- ``openvino``: ``--engine openvino``: that export in OpenVINO, bf16 where the CPU has it
  natively, else fp32 (what ``default`` runs on such a CPU when the check passes);
- ``openvino-fp32``: the same in fp32;
- ``torch-fast``: ``--engine torch``: batch-norms folded into the convolutions, channels-last,
  windows batched, ``inference_mode``, bf16 autocast where the CPU has native bf16
  (AVX512-BF16/AMX), else fp32;
- ``torch-fast-fp32``: the same in fp32;
- ``onnxruntime-int8``: the ONNX export after static int8 quantization (``--quantize int8``),
  calibrated here on 8 windows of the tile.

Each engine runs ``--rounds`` times, interleaved; the best time counts (the machine may be
shared: the load average is printed). Prints one JSON object: seconds per engine, speed-up over
``plain``, the largest probability difference from ``plain`` on 2 windows, agreement of the class
maps with ``plain``, CPU facts. Asserts nothing.

    python bench/s2_patch_classifier.py               # 1024 x 1024 tile, 256 px windows
    python bench/s2_patch_classifier.py --engines default --rounds 3   # plain against the default only
    python bench/s2_patch_classifier.py --size 512    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="tile size in pixels")
    ap.add_argument("--patch", type=int, default=256, choices=(64, 256))
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--bands", type=int, default=5)
    ap.add_argument("--encoder", default="resnet50")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: all cores)")
    ap.add_argument("--engines", default="default,onnxruntime,openvino,openvino-fp32,torch-fast,torch-fast-fp32,"
                    "onnxruntime-int8",
                    help="comma-separated engines to time beside plain")
    args = ap.parse_args(argv)
    print(json.dumps(run(args), indent=2))
    return 0


class Plain:
    """One window at a time through the unmodified model."""

    def __init__(self, model, meta):
        self.model, self.meta, self.batch, self.engine = model.eval(), meta, 1, "plain"

    def __call__(self, x):
        import torch

        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).numpy()


def run(args) -> dict:
    import numpy as np
    import torch

    from components.s2_patch_classifier import modelio
    from components.s2_patch_classifier.model import Arch, build
    from components.s2_patch_classifier.patches import positions
    from components.s2_patch_classifier.onnx_export import CACHE_ENV
    from components.s2_patch_classifier.predict import (OnnxPredictor, TorchPredictor, _predict_rows,
                                                        bf16_native, open_predictor)

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    arch = Arch(args.bands, 2, args.encoder, args.width)
    stats = {"low": [0.0] * args.bands, "high": [10000.0] * args.bands, "mean": [1500.0] * args.bands,
             "std": [1000.0] * args.bands}
    meta = modelio.base_meta(arch, [f"B{i + 1}" for i in range(args.bands)], [0, 1], args.patch, stats, False)

    def fresh_model():
        torch.manual_seed(0)
        m = build(arch)
        m.normalise.set_stats(stats["low"], stats["high"], stats["mean"], stats["std"])
        for mod in m.modules():  # trained-like batch-norm statistics
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.data.uniform_(0.5, 1.5)
        return m.eval()

    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 700.0, (args.bands, args.size, args.size)).astype(np.float32)
    stride = max(1, args.patch - int(round(args.overlap * args.patch)))
    windows = len(positions(args.size, args.patch, stride)) ** 2
    wanted = [e for e in args.engines.split(",") if e]
    engines = {"plain": Plain(fresh_model(), meta)}
    if "torch-fast" in wanted:
        engines["torch-fast"] = TorchPredictor(fresh_model(), meta, torch.device("cpu"))
    if "torch-fast-fp32" in wanted:
        engines["torch-fast-fp32"] = TorchPredictor(fresh_model(), meta, torch.device("cpu"), precision="fp32")
    quantize_s = default_engine = None
    open_s = {}
    saved_cache = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[CACHE_ENV] = tmp  # an empty cache: the first ONNX Runtime open exports
        pt = modelio.save_pytorch(Path(tmp) / "model.pt", fresh_model(), meta)
        for name, engine, precision in (("default", "auto", "auto"), ("onnxruntime", "onnxruntime", "auto"),
                                        ("openvino", "openvino", "auto"), ("openvino-fp32", "openvino", "fp32")):
            if name in wanted:
                t0 = time.perf_counter()
                engines[name] = open_predictor(pt, torch.device("cpu"), precision, engine, threads)
                open_s[name] = round(time.perf_counter() - t0, 1)
        default_engine = engines["default"].engine if "default" in engines else None
        if "onnxruntime-int8" in wanted:
            from components.s2_patch_classifier.onnx_export import export, quantize_int8

            path = export(fresh_model(), Path(tmp) / "model.onnx", meta, args.patch)
            t0 = time.perf_counter()
            calib = np.stack([image[:, y:y + args.patch, x:x + args.patch]
                              for y, x in rng.integers(0, args.size - args.patch + 1, (8, 2))])
            q = quantize_int8(path, Path(tmp) / "model_int8.onnx", calib, meta)
            quantize_s = time.perf_counter() - t0
            engines["onnxruntime-int8"] = OnnxPredictor(q, meta, torch.device("cpu"), threads)
        probe = np.stack([image[:, :args.patch, :args.patch], image[:, -args.patch:, -args.patch:]])
        ref = engines["plain"](probe)
        prob_diff = {k: float(np.abs(e(probe) - ref).max()) for k, e in engines.items() if k != "plain"}
        maps, best = {}, {}
        load_before = os.getloadavg()
        for _ in range(args.rounds):
            for name, engine in engines.items():
                t0 = time.perf_counter()
                maps[name] = _predict_rows(lambda y, p: image[:, y:y + p], args.size, args.size, engine,
                                           args.overlap, write=None)
                best[name] = min(best.get(name, 1e30), time.perf_counter() - t0)
        load_after = os.getloadavg()
    if saved_cache is None:
        os.environ.pop(CACHE_ENV)
    else:
        os.environ[CACHE_ENV] = saved_cache
    return {
        "model": f"U-Net, {args.encoder} encoder width {args.width}, {args.bands} bands, random weights",
        "tile_px": [args.size, args.size], "patch": args.patch, "overlap": args.overlap, "windows": windows,
        "seconds_best_of_rounds": {k: round(v, 3) for k, v in best.items()},
        "windows_per_second": {k: round(windows / v, 2) for k, v in best.items()},
        "speedup_vs_plain": {k: round(best["plain"] / v, 2) for k, v in best.items() if k != "plain"},
        "max_probability_difference_vs_plain": {k: float(f"{v:.1e}") for k, v in prob_diff.items()},
        "agreement_with_plain": {k: round(float((maps[k] == maps["plain"]).mean()), 5) for k in maps if k != "plain"},
        "default_engine": default_engine,
        "target": ">= 3 x plain",
        "target_met_by": [k for k, v in best.items() if k != "plain" and best["plain"] / v >= 3.0],
        "open_s": open_s,
        "int8_quantization_s": None if quantize_s is None else round(quantize_s, 1),
        "cpu": {"model": _cpu_name(), "cores": os.cpu_count(), "threads": threads, "bf16_native": bf16_native(),
                "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)]},
        "torch": torch.__version__, "python": platform.python_version(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
