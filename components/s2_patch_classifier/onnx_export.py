"""ONNX export: the U-Net followed by a softmax, raw band values in, class probabilities out,
dynamic batch size, fixed window size (the patch size), metadata as JSON.

Uses the ``torch.onnx`` dynamo exporter (needs the ``onnxscript`` package), with
``dynamic_shapes`` so the batch dimension is not frozen at export.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

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
    example = torch.zeros(2, model.arch.in_channels, window, window)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # the exporter prints progress and warns about optional torchvision ops: keep logs readable
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(Probabilities(model), (example,), input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes={"x": {0: batch}}, dynamo=True, optimize=True,
                                    opset_version=OPSET, verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    proto.producer_name = "s2-patch-classifier"
    onnx.save_model(proto, str(path))
    return Path(path)
