"""ONNX export: the U-Net followed by a softmax, raw band values in, class probabilities out,
dynamic batch size, fixed window size (the patch size), metadata as JSON.

The network is a plain CNN (convolutions, batch-norm, ReLU, max-pool, nearest up-sampling,
concatenation), which the TorchScript-based exporter (``dynamo=False``, ``dynamic_axes`` for
the batch) translates exactly and about ten times faster than the dynamo exporter; where a
torch release no longer offers it, the dynamo exporter (needs ``onnxscript``) runs with
``dynamic_shapes``, so the batch dimension is never frozen. Both outputs are checked against
PyTorch with ONNX Runtime (the tests, and ``train`` after every export).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from .modelio import META_KEY
from .model import UNet

log = logging.getLogger(__name__)
INPUT, OUTPUT = "bands", "probabilities"
OPSET = 18


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
