"""ONNX export: the U-Net followed by a softmax, raw band values in, class probabilities out,
dynamic batch size, fixed window size (the patch size), metadata as JSON.

The network is a plain CNN (convolutions, batch-norm, ReLU, max-pool, nearest up-sampling,
concatenation), which the TorchScript-based exporter (``dynamo=False``, ``dynamic_axes`` for
the batch) translates exactly and about ten times faster than the dynamo exporter; where a
torch release no longer offers it, the dynamo exporter (needs ``onnxscript``) runs with
``dynamic_shapes``, so the batch dimension is never frozen. Both outputs are checked against
PyTorch with ONNX Runtime (the tests, and ``train`` after every export).

:func:`cached_export` serves prediction with PyTorch model files in ONNX Runtime: one export per
model file (keyed by its content and the exporter's versions) kept in a cache folder, checked
against PyTorch when written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from components import __version__
from components.common.errors import ServiceError
from components.common.modelfile import first_words

from .modelio import META_KEY
from .model import UNet

log = logging.getLogger(__name__)
INPUT, OUTPUT = "bands", "probabilities"
OPSET = 18
# an export whose probabilities differ more from PyTorch's is refused (fp32 on both sides: the
# difference is rounding, about 1e-7)
EXPORT_TOLERANCE = 1e-4
CACHE_ENV = "S2PC_ONNX_CACHE"


class Probabilities(torch.nn.Module):
    def __init__(self, model: UNet):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x), dim=1)


def export(model: UNet, path: Path, meta: dict, window: int) -> Path:
    import onnx

    model = model.eval().cpu()
    wrapper = Probabilities(model).eval()  # the exporter restores the wrapper's mode afterwards: eval
    example = torch.zeros(2, model.arch.in_channels, window, window)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # the exporters print progress and warn about optional torchvision ops: keep logs readable
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            buffer = io.BytesIO()
            torch.onnx.export(wrapper, (example,), buffer, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, dynamo=False,
                              opset_version=OPSET)
            proto = onnx.load_from_string(buffer.getvalue())
        except (TypeError, RuntimeError, AttributeError) as e:
            log.debug("TorchScript exporter unavailable (%s): dynamo exporter", e)
            program = torch.onnx.export(wrapper, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes={"x": {0: batch}}, dynamo=True, optimize=True,
                                        opset_version=OPSET, verbose=False)
            proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    proto.producer_name = "s2-patch-classifier"
    onnx.save_model(proto, str(path))
    return Path(path)


def quantize_int8(src: Path, dst: Path, calibration: np.ndarray, meta: dict) -> Path:
    """Static int8 quantization (QDQ, per-channel int8 weights, uint8 activations) of the
    exported model ``src``, calibrated on ``calibration`` (N, C, P, P raw windows): ONNX Runtime
    then runs the convolutions in integer arithmetic (VNNI where the CPU has it)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(np.nan_to_num(calibration, nan=0.0).astype(np.float32)[:, None])

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {INPUT: x}

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    proto = onnx.load(str(dst))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps({**meta, "quantized": "int8"})
    onnx.save_model(proto, str(dst))
    return Path(dst)


def cache_folder() -> Path:
    """``$S2PC_ONNX_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache`` + ``s2-patch-classifier/onnx``;
    the system temp folder where that cannot be written (a read-only home in a pod)."""
    if os.environ.get(CACHE_ENV):
        candidates = [Path(os.environ[CACHE_ENV])]
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        candidates = [Path(base) / "s2-patch-classifier" / "onnx"]
    candidates.append(Path(tempfile.gettempdir()) / f"s2-patch-classifier-onnx-{os.getuid()}")
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK | os.X_OK):
                return folder
        except OSError:
            continue
    raise ServiceError(f"no writable folder for the ONNX export of the model (tried {candidates[0]}); "
                       f"set {CACHE_ENV} or use --engine torch")


def cache_key(source: Path) -> str:
    """The model file's content and everything that shapes its export."""
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"{torch.__version__} {OPSET} {__version__}".encode())
    return digest.hexdigest()[:24]


def cached_export(model: UNet, meta: dict, source: Path, force: bool = False) -> Path:
    """The ONNX export of the PyTorch model file ``source`` (``model`` and ``meta`` as loaded from
    it), from the cache or exported, checked and stored there now (written under a temporary name
    and renamed, so concurrent runs never read half a file)."""
    source = Path(source)
    path = cache_folder() / f"{source.stem}-{cache_key(source)}.onnx"
    if path.is_file() and not force:
        log.info("ONNX export of %s from the cache: %s", source.name, path)
        return path
    fd, tmp = tempfile.mkstemp(suffix=".onnx.part", dir=path.parent)
    os.close(fd)
    try:
        try:
            export(model, Path(tmp), meta, meta["patch_size"])
        except Exception as e:  # noqa: BLE001 - the exporters raise many kinds
            raise ServiceError(f"{source.name} cannot be exported to ONNX ({first_words(e)}); "
                               "--engine torch runs it in PyTorch") from None
        check_export(model, Path(tmp), meta, source.name)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("%s exported to ONNX: %s", source.name, path)
    return path


def check_export(model: UNet, path: Path, meta: dict, name: str) -> float:
    """ONNX Runtime must give PyTorch's probabilities on two windows of plausible band values
    (the model's normalisation statistics); returns the largest difference."""
    from .predict import OnnxPredictor, probe_windows

    x = probe_windows(meta)
    with torch.inference_mode():
        ref = torch.softmax(model.eval()(torch.from_numpy(x)), dim=1).numpy()
    got = OnnxPredictor(path, meta, torch.device("cpu"), name=name)(x)
    diff = float(np.abs(ref - got).max())
    if not diff <= EXPORT_TOLERANCE:
        raise ServiceError(f"{name}: its ONNX export differs from the PyTorch model by {diff:.1e} "
                           f"(> {EXPORT_TOLERANCE:g}); --engine torch runs it in PyTorch")
    return diff
