"""ONNX export of the crop-type LSTM and ONNX Runtime sessions for inference.

The export has one input ``x`` float32 [batch, timesteps, bands] (raw values, normalisation is in
the graph) with a dynamic batch dimension, and one output ``logits`` [batch, classes]. The model
file's metadata (class ids and names, bands, time steps) is copied into the ONNX metadata.

The TorchScript-based exporter is used first: it writes the same ONNX ``LSTM`` operator as the
dynamo exporter in about 0.3 s instead of about 20 s here; the dynamo exporter (which needs
``onnxscript``) is the fallback.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from .h5io import ModelInfo

log = logging.getLogger(__name__)

OPSET = 17
INPUT, OUTPUT = "x", "logits"


def export_onnx(model, path: Path, info: ModelInfo) -> Path:
    import onnx
    import torch

    model = copy.deepcopy(model).cpu().eval()
    c = model.config
    example = torch.zeros(2, c.n_timesteps, c.n_features)
    path = Path(path)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET)
        except Exception as e:  # noqa: BLE001 - the TorchScript exporter may be gone in later torch versions
            log.debug("TorchScript ONNX export failed (%s); using the dynamo exporter", e)
            torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)
    proto = onnx.load(str(path))
    meta = {"class_ids": json.dumps(info.class_ids), "class_names": json.dumps(info.class_names),
            "band_names": json.dumps(info.band_names), "timesteps": json.dumps(info.timesteps),
            "temporal": info.temporal, "input_unit": info.input_unit or "not recorded",
            "normalisation": "in the graph: (x - mean) / std, x == 0 -> 0"}
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def onnx_session(model_or_path, threads: int = 0):
    """An ONNX Runtime CPU session (``threads`` 0: ONNX Runtime's default, all cores)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    source = str(model_or_path) if isinstance(model_or_path, Path) else model_or_path
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def onnx_bytes(model, info: ModelInfo, workdir: Path) -> bytes:
    """The ONNX export of ``model`` as bytes (written through ``workdir``)."""
    tmp = Path(workdir) / "model.onnx"
    export_onnx(model, tmp, info)
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def max_difference(session, model, x: np.ndarray) -> float:
    """Largest absolute difference of the logits of ONNX Runtime and PyTorch on ``x``."""
    from .model import predict_logits

    ours = session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, np.float32)})[0]
    ref = predict_logits(model, x)
    return float(np.abs(ours - ref).max()) if len(x) else 0.0
