"""The model file: an HDF5 (``.h5``) file that holds everything inference needs.

Layout (format ``eo-kfp-services.crop-lstm``, version 1)::

    /                     attributes:
        format, format_version, architecture ("CropLSTM")
        config            JSON: n_features, n_timesteps, n_classes, hidden_size, num_layers,
                          dropout, bidirectional
        class_ids         int array: the class id (Table 8) of each output of the network
        class_names       JSON list, one name per output
        band_names        JSON list, the input features in order (B2 ... B12)
        timesteps         JSON list, the input time steps (e.g. "2017-09" ... "2018-08")
        temporal          "monthly" or "acquisitions"
        software_version, created, training (JSON: parameters and validation figures)
    /normalisation/mean   float32 [n_features]  input = (x - mean) / std; x == 0 (no observation) -> 0
    /normalisation/std    float32 [n_features]
    /weights/<name>       float32, PyTorch parameter names and shapes: lstm.weight_ih_l<k>
                          [4*hidden, inputs], lstm.weight_hh_l<k> [4*hidden, hidden], lstm.bias_ih_l<k>,
                          lstm.bias_hh_l<k> [4*hidden] (gates in the order input, forget, cell,
                          output; suffix _reverse for the backward direction), head.weight
                          [n_classes, features], head.bias [n_classes]

Reading needs only this module and PyTorch: :func:`load_model`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components import __version__
from components.common.errors import ServiceError

FORMAT = "eo-kfp-services.crop-lstm"
FORMAT_VERSION = 1
ARCHITECTURE = "CropLSTM"


@dataclass
class ModelInfo:
    """What the model file says besides the weights."""

    class_ids: list[int]
    class_names: list[str]
    band_names: list[str]
    timesteps: list[str]
    temporal: str = "monthly"
    training: dict = field(default_factory=dict)
    software_version: str = __version__
    created: str = ""


def save_model(path: Path, model, info: ModelInfo) -> Path:
    """Write ``model`` (a CropLSTM) and ``info`` to ``path``."""
    import h5py

    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["architecture"] = ARCHITECTURE
        f.attrs["config"] = json.dumps(model.config.to_dict())
        f.attrs["class_ids"] = np.asarray(info.class_ids, np.int64)
        f.attrs["class_names"] = json.dumps(info.class_names)
        f.attrs["band_names"] = json.dumps(info.band_names)
        f.attrs["timesteps"] = json.dumps(info.timesteps)
        f.attrs["temporal"] = info.temporal
        f.attrs["software_version"] = info.software_version
        f.attrs["created"] = info.created or dt.datetime.now(dt.timezone.utc).isoformat()
        f.attrs["training"] = json.dumps(info.training, default=str)
        norm = f.create_group("normalisation")
        norm.create_dataset("mean", data=state.pop("mean").astype(np.float32))
        norm.create_dataset("std", data=state.pop("std").astype(np.float32))
        weights = f.create_group("weights")
        for name, value in state.items():
            weights.create_dataset(name, data=value.astype(np.float32))
    return Path(path)


def load_model(path: Path):
    """``(model, info)`` from a model file; the model is a CropLSTM in eval mode on the CPU.
    A file that is not such a model raises ServiceError naming it."""
    import h5py
    import torch

    from .model import CropLSTM, ModelConfig

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ServiceError(f"{path.name} is not a crop-type LSTM model file (format "
                                   f"{f.attrs.get('format', 'missing')!r}, expected {FORMAT!r}; train one with "
                                   "train_lstm)")
            version = int(f.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise ServiceError(f"{path.name} has model format version {version}; this software reads up to "
                                   f"{FORMAT_VERSION}")
            config = ModelConfig.from_dict(json.loads(f.attrs["config"]))
            info = ModelInfo(class_ids=[int(c) for c in f.attrs["class_ids"]],
                             class_names=json.loads(f.attrs["class_names"]),
                             band_names=json.loads(f.attrs["band_names"]),
                             timesteps=json.loads(f.attrs["timesteps"]),
                             temporal=str(f.attrs.get("temporal", "monthly")),
                             training=json.loads(f.attrs.get("training", "{}")),
                             software_version=str(f.attrs.get("software_version", "")),
                             created=str(f.attrs.get("created", "")))
            state = {"mean": torch.from_numpy(f["normalisation/mean"][()]),
                     "std": torch.from_numpy(f["normalisation/std"][()])}
            for name, ds in f["weights"].items():
                state[name] = torch.from_numpy(ds[()])
    except ServiceError:
        raise
    except OSError as e:
        raise ServiceError(f"{path.name} is not a readable HDF5 model file: {' '.join(str(e).split())}") from None
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise ServiceError(f"{path.name} is an incomplete model file: {' '.join(str(e).split())}") from None
    if len(info.class_ids) != config.n_classes or len(info.class_names) != config.n_classes:
        raise ServiceError(f"{path.name}: {len(info.class_ids)} class ids for {config.n_classes} network outputs")
    model = CropLSTM(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "weights do not match the configuration"
        raise ServiceError(f"{path.name}: weights do not match the stored configuration ({first})") from None
    model.eval()
    return model, info
