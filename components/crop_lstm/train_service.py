"""train_lstm: train the crop-type LSTM from scratch on train.npy / y_train.npy (seed section 3.2.4).

The input is normalised per band (statistics of the training set, stored in the model), the
network trained with Adam for ``n_epochs``, and written as ``<model_name>.h5`` (the product:
weights, architecture, normalisation, class names; see :mod:`.h5io`) and ``<model_name>.onnx``,
with ``metrics.json`` (per-epoch history; overall accuracy, kappa, macro F1 and confusion matrix
of the validation set, or of the training set when none is given) and ``run.json``. The saved
model is read back and must predict exactly as the trained one; the ONNX export is checked
against PyTorch with ONNX Runtime.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components import __version__
from components.common import outputs, storage
from components.common.errors import ServiceError
from components.common.logs import Steps
from components.timesen2crop.legend import BANDS, class_name

from .h5io import ModelInfo, load_model, save_model
from .metrics import summary
from .model import CropLSTM, ModelConfig, normalisation, predict_logits
from .params import TrainParams
from .units import MODEL_UNIT, training_unit

log = logging.getLogger(__name__)

SERVICE = "train_lstm"
MAX_LABEL = 254  # crop maps are uint8 with 255 as NoData
CHECK_SAMPLES = 4096
ONNX_TOLERANCE = 1e-3


@dataclass
class TrainResult:
    """What a run wrote: the model (the product) and its sidecars."""

    model: str
    onnx: str
    metrics_file: str
    run_record: str
    metrics: dict = field(default_factory=dict)
    confusion: dict = field(default_factory=dict)


def run(input_dir: str, params: TrainParams, output_dir: str) -> TrainResult:
    with storage.output_folder(output_dir) as local_out:
        return _run(input_dir, params, output_dir, local_out)


# -- inputs --------------------------------------------------------------------------------


def _load(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise ServiceError(f"{what} not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ServiceError(f"{path.name} is not a readable NumPy .npy array: {' '.join(str(e).split())[:160]}") from None
    if not isinstance(loaded, np.ndarray):  # np.load opens an .npz archive whatever the file is named
        names = ", ".join(loaded.files) or "none"
        loaded.close()
        raise ServiceError(f"{path.name} is a NumPy .npz archive (arrays: {names}), not a .npy array: save the "
                           "array with numpy.save")
    return loaded


def load_pair(x_path: Path, y_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Samples [N, timesteps, bands] float32 and labels [N] int64, checked."""
    x = _load(x_path, "samples file")
    y = _load(y_path, "labels file")
    xn, yn = x_path.name, y_path.name
    if x.dtype.kind not in "iuf":
        raise ServiceError(f"{xn} holds {x.dtype} values: expected numbers (reflectance x 10000)")
    if x.ndim != 3:
        raise ServiceError(f"{xn} has shape {tuple(x.shape)}: expected [N, timesteps, bands] (3 dimensions)")
    if min(x.shape) == 0:
        raise ServiceError(f"{xn} has shape {tuple(x.shape)}: no sample, time step or band")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ServiceError(f"{yn} has shape {tuple(y.shape)}: expected one label per sample [N]")
    if len(y) != len(x):
        raise ServiceError(f"{yn} has {len(y)} labels for the {len(x)} samples of {xn}")
    if y.dtype.kind not in "iuf":
        raise ServiceError(f"{yn} holds {y.dtype} values: expected integer class ids")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        bad = y[~(np.isfinite(y) & (y == np.round(y)))][0]
        raise ServiceError(f"{yn} holds the non-integer label {bad!r}: expected integer class ids")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() > MAX_LABEL:
        bad = y.min() if y.min() < 0 else y.max()
        raise ServiceError(f"{yn} holds the label {bad}: class ids must be 0..{MAX_LABEL}")
    x = np.asarray(x, np.float32)
    if not np.isfinite(x).all():
        raise ServiceError(f"{xn} holds NaN or infinite values: a missing observation must be 0")
    if not x.any():  # 0 is a missing observation: nothing to learn from
        raise ServiceError(f"{xn} holds no observation: every value is 0 (0 = no observation)")
    return x, y


def find_validation(folder: Path) -> tuple[Path, Path]:
    """The validation pair in ``folder``: val.npy / y_val.npy, else its only <name>.npy / y_<name>.npy."""
    if not folder.is_dir():
        raise ServiceError(f"--val must be a folder holding <name>.npy and y_<name>.npy: {folder} is not a folder")
    if (folder / "val.npy").is_file() and (folder / "y_val.npy").is_file():
        return folder / "val.npy", folder / "y_val.npy"
    pairs = sorted((folder / y.name[2:], y) for y in folder.glob("y_*.npy") if (folder / y.name[2:]).is_file())
    if len(pairs) != 1:
        found = ", ".join(p.name for p in sorted(folder.glob("*.npy"))) or "no .npy file"
        raise ServiceError(f"--val {folder}: expected one pair <name>.npy and y_<name>.npy (e.g. val.npy, "
                           f"y_val.npy); found {found}")
    return pairs[0]


def _dataset_info(folder: Path, n_features: int, n_timesteps: int) -> tuple[list[str], list[str], str, dict]:
    """Band names, time-step labels, temporal mode and class names from dataset.json (timesen2crop)."""
    path = folder / "dataset.json"
    meta = _read_dataset_json(path) if path.is_file() else {}
    bands = meta.get("bands") if len(meta.get("bands") or []) == n_features else None
    bands = bands or (list(BANDS) if n_features == len(BANDS) else [f"feature {i + 1}" for i in range(n_features)])
    steps = meta.get("timesteps") if len(meta.get("timesteps") or []) == n_timesteps else None
    steps = steps or [f"t{i + 1}" for i in range(n_timesteps)]
    temporal = meta.get("temporal") or "unknown"
    names = {int(k): v for k, v in (meta.get("classes") or {}).items()}
    return bands, steps, temporal, names


def _read_dataset_json(path: Path) -> dict:
    """dataset.json, checked: the names it gives go into the model file, so a damaged one is refused
    rather than trained past (timesen2crop and worldcrops write it; it may also be left out)."""
    try:
        meta = json.loads(path.read_text(), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ServiceError(f"{path.name} is not readable JSON ({' '.join(str(e).split())[:120]}): fix it or "
                           "remove it (it only names bands, time steps and classes)") from None
    if not isinstance(meta, dict):
        raise ServiceError(f"{path.name} holds {_short(meta)}: expected a JSON object with bands, timesteps, "
                           "temporal and classes, as timesen2crop writes it")
    for key in ("bands", "timesteps"):
        _check_names(path, key, meta.get(key))
    if meta.get("temporal") is not None and not isinstance(meta["temporal"], str):
        raise ServiceError(f"{path.name}: 'temporal' is {_short(meta['temporal'])}: expected a text (monthly or "
                           "acquisitions)")
    _check_classes(path, meta.get("classes"))
    return meta


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _check_names(path: Path, key: str, value) -> None:
    if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ServiceError(f"{path.name}: {key!r} is {_short(value)}: expected a list of names (texts)")


def _check_classes(path: Path, classes) -> None:
    if classes is None:
        return
    if not isinstance(classes, dict):
        raise ServiceError(f"{path.name}: 'classes' is {_short(classes)}: expected an object of class id -> name, "
                           'e.g. {"2": "Maize"}')
    for key, name in classes.items():
        if not key.strip().isdecimal() or int(key) > MAX_LABEL:
            raise ServiceError(f"{path.name}: class key {key!r} is not a class id: expected an integer 0..{MAX_LABEL}")
        if not isinstance(name, str):
            raise ServiceError(f"{path.name}: the name of class {key} is {_short(name)}: expected a text")


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- run -----------------------------------------------------------------------------------


def _run(input_dir: str, params: TrainParams, output_dir: str, local_out: Path | None) -> TrainResult:
    import torch

    from .onnx_export import export_onnx, max_difference, onnx_session
    from .training import fit, pick_device

    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    device = pick_device(params.device)
    with outputs.work_folder(local_out, ".trl-") as work:
        with steps.step("fetch and check inputs"):
            folder = storage.fetch_input(input_dir, work / "input")
            if not folder.is_dir():
                raise ServiceError(f"input_dir must be a folder holding train.npy and y_train.npy: {input_dir}")
            x, y = load_pair(folder / "train.npy", folder / "y_train.npy")
            xv = yv = None
            if params.val:
                vfolder = storage.fetch_input(params.val, work / "val")
                xp, yp = find_validation(vfolder)
                xv, yv = load_pair(xp, yp)
                if xv.shape[1:] != x.shape[1:]:
                    raise ServiceError(f"{xp.name} has {xv.shape[1]} time steps x {xv.shape[2]} bands; "
                                       f"train.npy has {x.shape[1]} x {x.shape[2]}: they must match")
        unit, seen = training_unit(x)
        if unit != MODEL_UNIT:
            log.warning("train.npy values %s are not %s (TimeSen2Crop's and the composites' unit): the model records "
                        "input unit %r%s", seen, MODEL_UNIT, unit,
                        ": tile_classifier brings composites to reflectance for it" if unit == "reflectance" else
                        ": tile_classifier will refuse it")
        class_ids = sorted(int(c) for c in np.unique(y))
        if len(class_ids) < 2:
            raise ServiceError(f"y_train.npy holds a single class ({class_ids[0]}): at least two are needed")
        bands, timesteps, temporal, names = _dataset_info(folder, x.shape[2], x.shape[1])
        class_names = [names.get(c) or class_name(c) for c in class_ids]
        index = {c: i for i, c in enumerate(class_ids)}
        y_idx = np.array([index[int(v)] for v in y], np.int64)
        yv_idx = None
        if yv is not None:
            yv_idx = np.array([index.get(int(v), -1) for v in yv], np.int64)
            unseen = sorted({int(v) for v in yv if int(v) not in index})
            if unseen:
                log.warning("validation classes %s are absent from the training set: their samples count as errors",
                            ", ".join(map(str, unseen)))
        log.info("training set: %d samples x %d steps x %d bands, %d classes; validation: %s; device %s",
                 *x.shape, len(class_ids), f"{len(xv)} samples" if xv is not None else "none", device)
        config = ModelConfig(x.shape[2], x.shape[1], len(class_ids), params.hidden_size, params.num_layers,
                             params.dropout, params.bidirectional)
        torch.manual_seed(params.seed)
        model = CropLSTM(config)
        model.set_normalisation(*normalisation(x))
        with steps.step(f"train {params.n_epochs} epochs on {device}"):
            history = fit(model, x, y_idx, xv, yv_idx, epochs=params.n_epochs, batch_size=params.batch_size,
                          learning_rate=params.learning_rate, class_weights=bool(params.class_weights),
                          seed=params.seed, device=device, class_ids=class_ids, batch_scaling=params.batch_scaling)
        with steps.step("evaluate"):
            eval_x, eval_y, split = (xv, yv, "validation") if xv is not None else (x, y, "training")
            pred = np.asarray(class_ids)[predict_logits(model, eval_x).argmax(1)]
            figures = summary(eval_y, pred, class_ids)
        log.info("%s set: overall accuracy %.4f, kappa %.4f, macro F1 %.4f (%d samples)", split,
                 figures["overall_accuracy"], figures["kappa"], figures["macro_f1"], figures["samples"])
        stage = work / "stage"
        stage.mkdir()
        h5_path = stage / f"{params.model_name}.h5"
        onnx_path = stage / f"{params.model_name}.onnx"
        training = {"params": params.as_dict(), "device": str(device), "epochs": len(history.epochs),
                    "seconds": history.seconds, "evaluated_on": split,
                    **{k: figures[k] for k in ("overall_accuracy", "kappa", "macro_f1", "samples")}}
        info = ModelInfo(class_ids, class_names, bands, timesteps, temporal, training, input_unit=unit)
        with steps.step("write model"):
            save_model(h5_path, model, info)
            check = eval_x[:CHECK_SAMPLES]
            reloaded, _ = load_model(h5_path)
            if not np.array_equal(predict_logits(reloaded, check), predict_logits(model, check)):
                raise RuntimeError(f"{h5_path.name} read back does not predict like the trained model")
            export_onnx(model, onnx_path, info)
            onnx_diff = max_difference(onnx_session(onnx_path), model, check)
            if not onnx_diff <= ONNX_TOLERANCE:
                raise RuntimeError(f"ONNX export differs from PyTorch by {onnx_diff:g}")
        label_names = [names.get(c) or class_name(c) for c in figures["labels"]]
        metrics = {"split": split, "overall_accuracy": round(figures["overall_accuracy"], 6),
                   "kappa": round(figures["kappa"], 6), "macro_f1": round(figures["macro_f1"], 6),
                   "samples": figures["samples"], "epochs": len(history.epochs),
                   "final_loss": round(history.epochs[-1]["loss"], 6), "train_seconds": history.seconds,
                   "onnx_max_abs_difference": onnx_diff}
        confusion = {"labels": figures["labels"], "names": label_names, "matrix": figures["confusion_matrix"]}
        outputs.write_json(stage / "metrics.json", {
            **metrics, "device": str(device), "classes": dict(zip(map(str, class_ids), class_names)),
            "f1_per_class": figures["f1_per_class"], "confusion_matrix": confusion, "history": history.epochs})
        record = outputs.run_record(
            SERVICE, __version__, params.as_dict(),
            [{"uri": input_dir, "samples": int(len(x)), "shape": list(x.shape)}]
            + ([{"uri": params.val, "samples": int(len(xv))}] if xv is not None else []),
            {"model": h5_path.name, "onnx": onnx_path.name, "metrics": metrics}, steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        size_mb = h5_path.stat().st_size / 1e6
        with steps.step("publish"):
            published = storage.publish(stage, output_dir, move=True)
    by_name = {Path(p).name: p for p in published}
    log.info("product %s: %d classes, %s overall accuracy %.3f, kappa %.3f, macro F1 %.3f, %.2f MB, %.1f s",
             by_name[h5_path.name], len(class_ids), split, metrics["overall_accuracy"], metrics["kappa"],
             metrics["macro_f1"], size_mb, steps.elapsed)
    return TrainResult(by_name[h5_path.name], by_name[onnx_path.name], by_name["metrics.json"], by_name["run.json"],
                       metrics, confusion)
