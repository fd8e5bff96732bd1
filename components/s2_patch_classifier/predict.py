"""Prediction over whole tiles: sliding windows of the patch size with overlap, blended.

Windows step by ``patch - overlap * patch`` pixels (the last row and column aligned on the tile's
edge). Each window's class probabilities are weighted by a pyramid (1 at the centre, 0.1 at the
edge, where a convolutional network sees the least context), summed, and the class with the
largest sum wins. The tile is processed one row of windows at a time: memory holds one strip of
``patch`` rows of the input and of the accumulated probabilities, whatever the tile size.

Engines (``--engine``):

- ``auto`` (default): the fastest engine that keeps the fp32 model's class probabilities to
  ``BF16_TOLERANCE`` (1e-3). On a CPU with native bf16 (AVX512-BF16/AMX) that is OpenVINO in
  bf16 (PyTorch bf16 where OpenVINO is not installed or cannot load the model), checked against
  fp32 on two probe windows when the model is opened (beyond the tolerance: ONNX Runtime fp32);
  on other CPUs ONNX Runtime fp32; on CUDA PyTorch, bf16 under the same check (beyond it fp32,
  its convolutions kept out of TF32). ONNX files always run in ONNX Runtime;
- ``onnxruntime``: ONNX files as they are; PyTorch files exported to ONNX once per file, cached
  and checked against PyTorch (:func:`onnx_export.cached_export`). fp32 throughout (PyTorch's
  probabilities to about 1e-7), graph optimisations (convolutions fused with their activations
  and additions, blocked memory layout), as many threads as the pod's CPU limit allows;
- ``openvino`` (CPU): the same ONNX file in OpenVINO, bf16 where the CPU has it natively (else
  fp32; ``precision`` picks by hand), unchecked. Its bf16 convolutions run about a fifth
  faster than PyTorch's on an AVX512-BF16 CPU without AMX (``bench/s2_patch_classifier.py``);
- ``torch`` (PyTorch files only): batch-norms folded into the convolutions, channels-last
  memory, windows batched, ``inference_mode``, and bf16 autocast where the CPU has native bf16
  or on CUDA (``precision`` picks fp32 or bf16 by hand), unchecked; fp32 on CUDA is full fp32
  (PyTorch runs cuDNN convolutions in TF32 unless told not to, about 1e-3 off).

Where the time goes (``bench/s2_patch_classifier.py``): nearly all of it in the convolutions,
which a plain fp32 PyTorch loop already runs efficiently, so the exact fp32 engines gain little
over it (batching, fusions); bf16 doubles the arithmetic rate where the CPU has it; int8
(``--quantize int8``) goes further at a larger cost in accuracy.

Output: a Cloud Optimized GeoTIFF (uint8 label values, 255 = no data) on the input's grid (CRS
and transform), with a colour table, plus a coloured quicklook PNG and a STAC item.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from components.common import signal_stack
from components.common.cpus import usable_cpus
from components.common.errors import InvalidParameter, ServiceError
from components.common.logs import Progress
from components.common.modelfile import first_words

from . import hysteresis
from .data import Tile
from .model import fold_batchnorm
from .modelio import load_pytorch, read_meta
from .patches import check_size, positions

log = logging.getLogger(__name__)

NODATA = 255
EDGE_WEIGHT = 0.1
# windows per call: fewer, larger calls cost less per window; the cap bounds a call's memory.
# A row's windows are split into equal calls
BATCH_PIXELS = {"cpu": 8 * 256 * 256, "cuda": 64 * 256 * 256}
ENGINES = ("auto", "onnxruntime", "openvino", "torch")
# the largest change of a class probability the default engine may make against the fp32 model
BF16_TOLERANCE = 1e-3


def bf16_native() -> bool:
    """True when this CPU runs bf16 convolutions natively (oneDNN on AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_capable(device: torch.device) -> bool:
    """True where bf16 is the faster precision: CUDA, or a CPU with native bf16."""
    return device.type == "cuda" or bf16_native()


def full_fp32(device: torch.device):
    """A context in which convolutions on ``device`` run in full fp32: on CUDA, cuDNN without
    TF32 (10 mantissa bits, PyTorch's default for convolutions); elsewhere nothing to change."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


class Predictor(abc.ABC):
    """Class probabilities (N, K, P, P) for raw windows (N, C, P, P) float32."""

    meta: dict
    engine: str
    batch: int

    @abc.abstractmethod
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for one batch of windows."""


class TorchPredictor(Predictor):
    def __init__(self, model, meta: dict, device: torch.device, precision: str = "auto"):
        self.meta, self.device = meta, device
        model = fold_batchnorm(model.eval()).to(device)
        self.model = model.to(memory_format=torch.channels_last)
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" or bf16_native() else "fp32"
        self.precision = precision
        self.engine = f"torch-{precision}"
        self.batch = max(1, BATCH_PIXELS[device.type] // meta["patch_size"] ** 2)

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"), \
                full_fp32(self.device):
            logits = self.model(t)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


def cpu_threads(threads: int | None) -> int:
    """``threads``, else as many as the pod's CPU limit allows: threads beyond it only wait on
    each other; a lower torch setting (the user's OMP_NUM_THREADS, parallel test workers) is kept."""
    return threads or min(usable_cpus(), torch.get_num_threads())


class OnnxPredictor(Predictor):
    """An ONNX file in ONNX Runtime; ``name`` is the file the user gave (for messages)."""

    def __init__(self, path: Path, meta: dict, device: torch.device, threads: int | None = None,
                 name: str | None = None):
        import onnxruntime as ort

        self.meta = meta
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.intra_op_num_threads = cpu_threads(threads)
        options.inter_op_num_threads = 1  # one call at a time: no inter-op pool
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise ServiceError(f"ONNX Runtime cannot load {name or Path(path).name}: "
                               f"{' '.join(str(e).split())[:160]}") from None
        self.input = self.session.get_inputs()[0].name
        self.engine = "onnxruntime-" + providers[0].replace("ExecutionProvider", "").lower()
        self.batch = max(1, BATCH_PIXELS["cuda" if providers[0].startswith("CUDA") else "cpu"] // meta["patch_size"] ** 2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(x, np.float32)})[0]


class OpenVinoPredictor(Predictor):
    """An ONNX file in OpenVINO on the CPU. ``precision`` "bf16" asks for bf16 arithmetic, which
    OpenVINO grants only where the CPU has it natively: the engine's name says what it runs;
    "auto": bf16 where native, else fp32."""

    def __init__(self, path: Path, meta: dict, precision: str = "auto", threads: int | None = None,
                 name: str | None = None):
        try:
            import openvino as ov
        except ImportError:
            raise ServiceError("OpenVINO is not installed (pip install openvino); "
                               "--engine onnxruntime runs the model") from None
        self.meta = meta
        if precision == "auto":
            precision = "bf16" if bf16_native() else "fp32"
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                  "INFERENCE_NUM_THREADS": cpu_threads(threads),
                  "PERFORMANCE_HINT": "LATENCY"}  # one call at a time, all threads on it
        with signal_stack.kept():  # OpenVINO replaces the thread's signal stack
            try:
                compiled = ov.Core().compile_model(str(path), "CPU", config)
            except Exception as e:  # noqa: BLE001 - OpenVINO raises its own exception types
                raise ServiceError(f"OpenVINO cannot load {name or Path(path).name}: {first_words(e, 160)}") from None
            granted = compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
            self.request = compiled.create_infer_request()
        self.precision = "bf16" if granted else "fp32"
        self.engine = f"openvino-{self.precision}"
        self.batch = max(1, BATCH_PIXELS["cpu"] // meta["patch_size"] ** 2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with signal_stack.kept():
            return self.request.infer({0: np.ascontiguousarray(x, np.float32)}, share_inputs=True)[0]


class FlipAveraged(Predictor):
    """Test-time augmentation: the class probabilities of each window averaged over its 8
    flips and 90-degree rotations (the augmentations of training), 8 times the work. A network
    is not equivariant to them, so the average is steadier on small objects than any one view."""

    def __init__(self, inner: Predictor):
        self.inner, self.meta, self.batch = inner, inner.meta, inner.batch
        self.engine = f"{inner.engine}+flips"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        total = None
        for k in range(4):
            for flip in (False, True):
                view = np.rot90(x, k, axes=(2, 3))
                view = view[..., ::-1] if flip else view
                prob = self.inner(np.ascontiguousarray(view))
                prob = np.rot90(prob[..., ::-1] if flip else prob, -k, axes=(2, 3))
                total = prob.copy() if total is None else total + prob
        return total / 8


def probe_windows(meta: dict, n: int = 2) -> np.ndarray:
    """``n`` windows of plausible raw band values (the model's normalisation statistics, Gaussian)
    to compare two engines on before a tile is read."""
    rng = np.random.default_rng(0)
    stats, p = meta["stats"], meta["patch_size"]
    mean = np.asarray(stats["mean"], np.float32)[:, None, None]
    std = np.asarray(stats["std"], np.float32)[:, None, None]
    return (mean + std * rng.standard_normal((n, len(meta["bands"]), p, p), np.float32)).astype(np.float32)


def open_predictor(model_file: str | Path, device: torch.device, precision: str = "auto", engine: str = "auto",
                   threads: int | None = None) -> Predictor:
    """The predictor for a model file: ``engine`` as for ``--engine`` (see the module's doc);
    ``openvino`` runs on the CPU whatever ``device``."""
    if engine not in ENGINES:
        raise InvalidParameter("engine", engine, "one of " + ", ".join(ENGINES))
    path = Path(model_file)
    if path.suffix.lower() == ".onnx":
        if engine == "torch":
            raise InvalidParameter("engine", engine,
                                   f"auto, onnxruntime or openvino for the ONNX model file {path.name}")
        if engine == "openvino":
            return OpenVinoPredictor(path, read_meta(path), precision, threads)
        return OnnxPredictor(path, read_meta(path), device, threads)
    model, meta = load_pytorch(path)
    if engine == "torch":
        return TorchPredictor(model, meta, device, precision)
    if engine == "openvino":
        return _open_export(model, meta, path, lambda f: OpenVinoPredictor(f, meta, precision, threads, path.name))
    if engine == "auto" and precision != "fp32" and bf16_capable(device):  # bf16 only where it keeps BF16_TOLERANCE
        fast = bf16_predictor(model, meta, device, threads, path.name,
                              lambda open_file: _open_export(model, meta, path, open_file))
        if within_tolerance(fast, model, meta, path.name):
            return fast
    if engine == "auto" and device.type == "cuda":
        return TorchPredictor(model, meta, device, "fp32")
    return _onnx(model, meta, path, device, threads)


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def bf16_predictor(model, meta: dict, device: torch.device, threads: int | None, name: str, via_onnx) -> Predictor:
    """The fastest bf16 engine for ``model`` on ``device``: on a CPU OpenVINO where installed
    (``via_onnx(open_file)`` opens the model's ONNX export with ``open_file``), else PyTorch,
    which also takes a model that cannot be exported or that OpenVINO cannot load. ``model`` is
    left as it is."""
    if device.type == "cpu" and openvino_installed():
        try:
            return via_onnx(lambda f: OpenVinoPredictor(f, meta, "bf16", threads, name))
        except ServiceError as e:
            log.warning("%s; PyTorch bf16 instead", e)
    return TorchPredictor(copy.deepcopy(model), meta, device, "bf16")  # it folds its batch-norms in place


def within_tolerance(predictor: Predictor, model, meta: dict, name: str) -> bool:
    """True when ``predictor`` keeps the fp32 model's probabilities (computed on the CPU) to
    BF16_TOLERANCE on probe windows (logged). ``model`` is left as it is."""
    x = probe_windows(meta)
    reference = copy.deepcopy(model).cpu().eval()
    with torch.inference_mode():
        ref = torch.softmax(reference(torch.from_numpy(x)), dim=1).numpy()
    diff = float(np.abs(predictor(x) - ref).max())
    if diff <= BF16_TOLERANCE:
        log.info("%s: %s within %.1e of fp32 on probe windows", name, predictor.engine, diff)
        return True
    log.info("%s: %s differs from fp32 by %.1e (> %g) on probe windows: fp32", name, predictor.engine, diff,
             BF16_TOLERANCE)
    return False


def auto_precision(model, meta: dict, device: torch.device, name: str) -> str:
    """The precision the ``auto`` engine predicts a PyTorch model in on ``device`` (for the
    benches, which run the network in PyTorch in that precision): bf16 where it is the faster
    (:func:`bf16_capable`) and the engine ``auto`` would use keeps BF16_TOLERANCE; fp32 otherwise."""
    from .onnx_export import export

    if not bf16_capable(device):
        return "fp32"
    with tempfile.TemporaryDirectory() as tmp:
        fast = bf16_predictor(model, meta, device, None, name, lambda open_file: open_file(
            export(model, Path(tmp) / "model.onnx", meta, meta["patch_size"])))
        return "bf16" if within_tolerance(fast, model, meta, name) else "fp32"


def _onnx(model, meta: dict, path: Path, device: torch.device, threads: int | None) -> Predictor:
    return _open_export(model, meta, path, lambda f: OnnxPredictor(f, meta, device, threads, name=path.name))


def _open_export(model, meta: dict, path: Path, open_file) -> Predictor:
    """``open_file`` on the cached ONNX export of the PyTorch model file ``path``."""
    from .onnx_export import cached_export

    onnx_path = cached_export(model, meta, path)
    try:
        return open_file(onnx_path)
    except ServiceError:  # a damaged cache entry: export again
        log.warning("the cached ONNX export %s does not load: exporting %s again", onnx_path, path.name)
        return open_file(cached_export(model, meta, path, force=True))


def window_weights(patch: int) -> np.ndarray:
    ramp = 1 - np.abs(np.linspace(-1, 1, patch))
    h = EDGE_WEIGHT + (1 - EDGE_WEIGHT) * ramp
    return np.outer(h, h).astype(np.float32)


@dataclass
class TileResult:
    path: Path
    class_pixels: dict
    windows: int
    seconds: float


def predict_array(image: np.ndarray, predictor: Predictor, overlap: float, grow_threshold: float = 0.0,
                  seed_threshold: float = 0.0, split_depth: float = 0.0) -> np.ndarray:
    """Class indices (H, W) for an in-memory image (C, H, W) with the same windows as tiles;
    ``grow_threshold`` > 0: objects grown by hysteresis (:mod:`.hysteresis`), and with
    ``split_depth`` > 0 cut apart between their seeds (:func:`.hysteresis.split`);
    ``seed_threshold`` > 0: foreground where a foreground class reaches it (:func:`thresholded`),
    not the argmax."""
    read = lambda y, p: image[:, y:y + p]  # noqa: E731
    if grow_threshold <= 0:
        return _predict_rows(read, image.shape[1], image.shape[2], predictor, overlap, write=None,
                             seed_threshold=seed_threshold)
    held = _Held(*image.shape[1:], grow_threshold, split_depth)
    _predict_rows(read, image.shape[1], image.shape[2], predictor, overlap, held, grow_threshold=grow_threshold,
                  seed_threshold=seed_threshold)
    return held.grown()


def thresholded(prob: np.ndarray, seed_threshold: float) -> np.ndarray:
    """Class indices (H, W, int16) for probabilities (K, H, W): the most probable foreground class
    where it reaches ``seed_threshold``, else the background (0)."""
    return hysteresis.candidates(prob, seed_threshold).astype(np.int16)


def probability_array(image: np.ndarray, predictor: Predictor, overlap: float) -> np.ndarray:
    """Class probabilities (K, H, W) for an in-memory image (C, H, W), blended over the windows of
    :func:`predict_array`. No-data pixels are not marked (the network sees them as zeros)."""
    read = lambda y, p: image[:, y:y + p]  # noqa: E731
    return blended(_predict_rows(read, image.shape[1], image.shape[2], predictor, overlap, write=None,
                                 probabilities=True))


def blended(sums: np.ndarray) -> np.ndarray:
    """Probabilities (K, ...) from window-weighted class sums: each pixel's sums over their total."""
    return sums / np.maximum(sums.sum(0), 1e-12)


class _Held:
    """A whole class map and its hysteresis candidates (and, to split objects, the best
    foreground probability as levels), filled as rows are finished."""

    def __init__(self, height: int, width: int, grow_threshold: float, split_depth: float = 0.0):
        self.grow_threshold, self.split_depth = grow_threshold, split_depth
        self.classes = np.zeros((height, width), np.int16)
        self.cand = np.zeros((height, width), np.uint8)
        self.levels = np.zeros((height, width), np.uint8) if split_depth > 0 else None

    def __call__(self, y: int, classes: np.ndarray, prob: np.ndarray) -> None:
        rows = slice(y, y + len(classes))
        best, p = hysteresis.best_foreground(prob)
        self.classes[rows] = classes
        self.cand[rows] = np.where(p >= self.grow_threshold, best, 0)
        if self.levels is not None:
            self.levels[rows] = hysteresis.level(p)

    def grown(self) -> np.ndarray:
        return hysteresis.grow(self.classes, self.cand, self.levels, self.split_depth)


def _predict_rows(read, height: int, width: int, predictor: Predictor, overlap: float, write,
                  progress: Progress | None = None, probabilities: bool = False, grow_threshold: float = 0.0,
                  seed_threshold: float = 0.0):
    """Core of the sliding window. ``read(y, P)`` gives input rows [y, y+P); ``write(y0, classes)``
    receives finished rows (classes as indices, -1 where the input is no data: the argmax, or
    :func:`thresholded` at ``seed_threshold`` > 0), and with ``grow_threshold`` > 0 their
    class probabilities too (``write(y0, classes, probabilities)``, for hysteresis).
    With ``write`` None the whole (H, W) index map is returned (or the (K, H, W) probability sums)."""
    p = predictor.meta["patch_size"]
    k = len(predictor.meta["classes"])
    stride = max(1, p - int(round(overlap * p)))
    ys, xs = positions(height, p, stride), positions(width, p, stride)
    weights = window_weights(p)
    acc = np.zeros((k, p, width), np.float32)
    nodata = np.zeros((p, width), bool)
    full = None if write else (np.zeros((k, height, width), np.float32) if probabilities else
                               np.zeros((height, width), np.int16))
    windows = 0
    for i, y in enumerate(ys):
        strip = np.asarray(read(y, p), np.float32)
        nodata[:] = np.isnan(strip).all(axis=0)
        calls = -(-len(xs) // predictor.batch)
        size = -(-len(xs) // calls)  # equal calls: 5 windows as one call of 5, not 4 + 1
        for s in range(0, len(xs), size):
            cols = xs[s:s + size]
            batch = np.stack([strip[:, :, x:x + p] for x in cols])
            prob = predictor(batch)
            for j, x in enumerate(cols):
                acc[:, :, x:x + p] += prob[j] * weights
            windows += len(cols)
        last = i == len(ys) - 1
        done = p if last else ys[i + 1] - y  # rows no later window touches
        if full is not None and probabilities:
            full[:, y:y + done] = acc[:, :done]
        else:
            prob = None
            if grow_threshold > 0 or seed_threshold > 0:
                prob = blended(acc[:, :done])
            classes = (thresholded(prob, seed_threshold) if seed_threshold > 0 else
                       acc[:, :done].argmax(0).astype(np.int16))
            classes[nodata[:done]] = -1
            if write is None:
                full[y:y + done] = classes
            elif grow_threshold > 0:
                write(y, classes, prob)
            else:
                write(y, classes)
        if not last:  # slide the buffers up by ``done`` rows
            acc[:, :p - done] = acc[:, done:].copy()
            acc[:, p - done:] = 0
        if progress:
            progress.advance()
    return full if write is None else windows


def predict_tile(tile: Tile, predictor: Predictor, overlap: float, dst: Path, grow_threshold: float = 0.0,
                 seed_threshold: float = 0.0, split_depth: float = 0.0) -> TileResult:
    """Classify ``tile`` into a GeoTIFF at ``dst`` (tiled, uint8 label values, colour table);
    ``seed_threshold`` > 0: :func:`thresholded` instead of the argmax; ``split_depth``: as
    :func:`predict_array`.
    Rows are written as they are finished, except with ``grow_threshold`` > 0: hysteresis joins
    objects across the whole tile, so the class map (and its candidates) is held in memory, 3
    bytes per pixel (4 with ``split_depth``; 4 more while objects are joined), and written at
    the end."""
    import time

    meta = predictor.meta
    bands = tuple(meta["bands"])
    tile.check_bands(bands)
    check_size(tile, meta["patch_size"])
    lut = np.array(meta["classes"] + [NODATA], np.uint8)  # index -1 -> NODATA
    colours = {i: tuple(c) for i, c in zip(meta["classes"], meta["colours"])}
    profile = {"driver": "GTiff", "width": tile.width, "height": tile.height, "count": 1, "dtype": "uint8",
               "crs": tile.crs, "transform": tile.transform, "nodata": NODATA, "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    counts = np.zeros(256, np.int64)
    t0 = time.perf_counter()
    stride = max(1, meta["patch_size"] - int(round(overlap * meta["patch_size"])))
    progress = Progress(len(positions(tile.height, meta["patch_size"], stride)), f"predict {tile.name}")
    with rasterio.open(dst, "w", **profile) as out:
        out.write_colormap(1, {**{i: (0, 0, 0, 0) for i in range(256)}, **colours})

        def write(y0, classes):
            values = lut[classes]
            counts[:] += np.bincount(values.ravel(), minlength=256)
            out.write(values[np.newaxis], window=Window(0, y0, tile.width, values.shape[0]))

        read = lambda y, p: tile.read(bands, Window(0, y, tile.width, p))  # noqa: E731
        if grow_threshold > 0:
            held = _Held(tile.height, tile.width, grow_threshold, split_depth)
            windows = _predict_rows(read, tile.height, tile.width, predictor, overlap, held, progress,
                                    grow_threshold=grow_threshold, seed_threshold=seed_threshold)
            write(0, held.grown())
        else:
            windows = _predict_rows(read, tile.height, tile.width, predictor, overlap, write, progress,
                                    seed_threshold=seed_threshold)
        out.update_tags(1, classes=",".join(map(str, meta["classes"])))
        out.set_band_description(1, "class")
    seconds = time.perf_counter() - t0
    class_pixels = {str(c): int(counts[c]) for c in meta["classes"]}
    if counts[NODATA]:
        class_pixels["nodata"] = int(counts[NODATA])
    log.info("%s: %dx%d px, %d windows, %.1f s (%s)", tile.name, tile.width, tile.height, windows, seconds,
             predictor.engine)
    return TileResult(dst, class_pixels, windows, seconds)


def to_cog(src: Path, dst: Path) -> Path:
    """Copy a class map into a Cloud Optimized GeoTIFF with nearest-neighbour overviews."""
    import rasterio.shutil

    try:
        rasterio.shutil.copy(src, dst, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE="512", OVERVIEWS="AUTO",
                             RESAMPLING="NEAREST")
    except rasterio.errors.RasterioError as e:
        raise ServiceError(f"cannot write {dst.name}: {' '.join(str(e).split())}") from None
    return dst
