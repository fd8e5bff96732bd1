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
        input_unit        the unit of the training values: "reflectance x 10000" (the chain's),
                          "reflectance" or "unknown" (absent in files written before it was recorded:
                          read as "", taken as reflectance x 10000 by tile_classifier)
        software_version, created, training (JSON: parameters and validation figures)
    /normalisation/mean   float32 [n_features]  input = (x - mean) / std; x == 0 (no observation) -> 0
    /normalisation/std    float32 [n_features]
    /weights/<name>       float32, PyTorch parameter names and shapes: lstm.weight_ih_l<k>
                          [4*hidden, inputs], lstm.weight_hh_l<k> [4*hidden, hidden], lstm.bias_ih_l<k>,
                          lstm.bias_hh_l<k> [4*hidden] (gates in the order input, forget, cell,
                          output; suffix _reverse for the backward direction), head.weight
                          [n_classes, features], head.bias [n_classes]

Reading needs only this package and PyTorch: :func:`load_model`, which refuses a file whose values
the network cannot use (architecture outside what train_lstm writes, class ids outside 0..254,
lists of the wrong length, non-finite weights or normalisation) with one line naming the field.
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
    input_unit: str = ""  # unit of the training values (components.crop_lstm.units); "" = not recorded


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
        if info.input_unit:
            f.attrs["input_unit"] = info.input_unit
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
            config = ModelConfig.from_dict(_checked_config(path, json.loads(f.attrs["config"])))
            info = ModelInfo(class_ids=[int(c) for c in f.attrs["class_ids"]],
                             class_names=json.loads(f.attrs["class_names"]),
                             band_names=json.loads(f.attrs["band_names"]),
                             timesteps=json.loads(f.attrs["timesteps"]),
                             temporal=str(f.attrs.get("temporal", "monthly")),
                             training=json.loads(f.attrs.get("training", "{}")),
                             software_version=str(f.attrs.get("software_version", "")),
                             created=str(f.attrs.get("created", "")),
                             input_unit=_text(f.attrs.get("input_unit", "")))
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
    _check_info(path, info, config)
    _check_values(path, state)
    model = CropLSTM(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "weights do not match the configuration"
        raise ServiceError(f"{path.name}: weights do not match the stored configuration ({first})") from None
    model.eval()
    return model, info


# -- checks of what a model file says (a damaged or hand-edited file must not reach the network) ---

MAX_CLASS_ID = 254  # crop maps are uint8 with 255 as NoData
_SIZES = ("n_features", "n_timesteps", "n_classes")


def _trained_range(name: str) -> tuple:
    """The bounds train_lstm accepts for an architecture parameter: a file outside them is damaged."""
    from .params import TrainParams

    meta = TrainParams.__dataclass_fields__[name].metadata
    return meta["minimum"], meta["maximum"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_config(path: Path, config) -> dict:
    """The ``config`` attribute, each value of the type and range the network needs."""
    if not isinstance(config, dict):
        raise ServiceError(f"{path.name}: config is {_short(config)}: expected a JSON object")
    for name in _SIZES:
        if name in config and not (_is_int(config[name]) and config[name] >= 1):
            raise ServiceError(f"{path.name}: config {name} is {_short(config[name])}: expected an integer >= 1")
    for name in ("hidden_size", "num_layers"):
        lo, hi = _trained_range(name)
        if name in config and not (_is_int(config[name]) and lo <= config[name] <= hi):
            raise ServiceError(f"{path.name}: config {name} is {_short(config[name])}: expected an integer "
                               f"{lo}..{hi}")
    lo, hi = _trained_range("dropout")
    dropout = config.get("dropout", 0.0)
    if not (isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and lo <= dropout <= hi):
        raise ServiceError(f"{path.name}: config dropout is {_short(dropout)}: expected a number {lo}..{hi}")
    if not isinstance(config.get("bidirectional", False), bool):
        raise ServiceError(f"{path.name}: config bidirectional is {_short(config['bidirectional'])}: expected "
                           "true or false")
    return config


def _check_info(path: Path, info: ModelInfo, config) -> None:
    """Class ids (0..254, the crop map is uint8 with 255 as NoData), names, bands and time steps:
    lists of the lengths the network was built for."""
    if len(info.class_ids) != config.n_classes:
        raise ServiceError(f"{path.name}: {len(info.class_ids)} class ids for {config.n_classes} network outputs")
    bad = [c for c in info.class_ids if not 0 <= c <= MAX_CLASS_ID]
    if bad:
        raise ServiceError(f"{path.name}: class_ids holds {bad[0]}: class ids must be 0..{MAX_CLASS_ID} "
                           "(255 is the crop map's NoData)")
    twice = next((c for i, c in enumerate(info.class_ids) if c in info.class_ids[:i]), None)
    if twice is not None:
        raise ServiceError(f"{path.name}: class_ids lists class {twice} twice: each network output is one class")
    _check_names(path, "class_names", info.class_names, config.n_classes, "network outputs (n_classes)")
    _check_names(path, "band_names", info.band_names, config.n_features, "input features (n_features)")
    _check_names(path, "timesteps", info.timesteps, config.n_timesteps, "time steps (n_timesteps)")


def _check_names(path: Path, name: str, values, expected: int, what: str) -> None:
    if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
        raise ServiceError(f"{path.name}: {name} is {_short(values)}: expected a JSON list of texts")
    if len(values) != expected:
        raise ServiceError(f"{path.name}: {name} lists {len(values)} entries but the network has {expected} {what}")


def _check_values(path: Path, state: dict) -> None:
    """Finite weights and normalisation, a positive standard deviation: anything else gives NaN or
    one class for every pixel."""
    for name, tensor in state.items():
        values = tensor.numpy()
        if values.dtype.kind != "f" or not np.isfinite(values).all():
            where = "normalisation/" + name if name in ("mean", "std") else "weights/" + name
            raise ServiceError(f"{path.name}: {where} holds NaN, infinite or non-float values: the model file is "
                               "damaged; train or copy it again")
    std = state["std"].numpy()
    if (std <= 0).any():
        raise ServiceError(f"{path.name}: normalisation/std holds {float(std[std <= 0][0]):g}: a standard deviation "
                           "must be > 0")


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
