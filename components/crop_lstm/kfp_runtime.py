"""What runs inside the train_lstm and tile_classifier containers. Kept apart from
``component.py`` because KFP's executor exposes only the artifact types of ``kfp.dsl``."""

from __future__ import annotations


def _has_arrays(folder: str) -> bool:
    from pathlib import Path

    return bool(folder) and Path(folder).is_dir() and any(Path(folder).glob("*.npy"))


def execute_train(input_uri: str, training_path: str, validation_path: str, model, metrics, confusion,
                  values: dict) -> None:
    """Body of train_lstm, importable and testable without KFP's executor."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded("train_lstm"):
        _execute_train(input_uri, training_path, validation_path, model, metrics, confusion, values)


def _execute_train(input_uri: str, training_path: str, validation_path: str, model, metrics, confusion,
                   values: dict) -> None:
    from components.common.errors import ServiceError
    from components.crop_lstm.params import TrainParams
    from components.crop_lstm.train_service import run

    source = input_uri or training_path
    if isinstance(values, dict) and not values.get("val") and _has_arrays(validation_path):
        values = dict(values, val=validation_path)
    if not source:
        raise ServiceError("give input_uri or training_data")
    params = TrainParams.from_strings(values)
    result = run(source, params, model.path)
    m = result.metrics
    model.metadata.update({"framework": "pytorch", "file": f"{params.model_name}.h5",
                           "onnx": f"{params.model_name}.onnx", "classes": result.confusion["names"],
                           "evaluated_on": m["split"]})
    for key in ("overall_accuracy", "kappa", "macro_f1", "samples", "epochs", "final_loss", "train_seconds"):
        metrics.log_metric(key, m[key])
    confusion.log_confusion_matrix(list(result.confusion["names"]),
                                   [[int(v) for v in row] for row in result.confusion["matrix"]])


def _model_file(model_path: str, model_uri: str, work) -> "Path":
    from pathlib import Path

    from components.common import storage
    from components.common.errors import ServiceError

    source = Path(model_path) if model_path else storage.fetch_input(model_uri, work / "model")
    if source.is_file():
        return source
    found = sorted(source.glob("*.h5")) if source.is_dir() else []
    if len(found) != 1:
        raise ServiceError(f"expected one .h5 model in {model_uri or model_path}, found {len(found)}")
    return found[0]


def execute_classify(model_path: str, model_uri: str, mask_uri: str, composites_path: str, mc_uri: str,
                     crop_map, quicklook, metrics, values: dict) -> None:
    """Body of tile_classifier: assembles the seed's --input_dir (model + mask) and runs the service."""
    from components.common.contract import guarded
    from components.common.logs import setup_logging

    setup_logging()
    with guarded("tile_classifier"):
        _execute_classify(model_path, model_uri, mask_uri, composites_path, mc_uri, crop_map, quicklook, metrics,
                          values)


def _execute_classify(model_path: str, model_uri: str, mask_uri: str, composites_path: str, mc_uri: str,
                      crop_map, quicklook, metrics, values: dict) -> None:
    from pathlib import Path

    from components.common import outputs, storage
    from components.common.errors import ServiceError
    from components.crop_lstm.classify_service import run
    from components.crop_lstm.params import ClassifyParams
    from components.s2_harmonization.kfp_runtime import html_page

    if not (model_path or model_uri):
        raise ServiceError("give model (a train_lstm Model) or model_uri")
    if not (composites_path or mc_uri):
        raise ServiceError("give composites (a monthlycomposite Dataset) or mc_uri")
    params = ClassifyParams.from_strings(values)
    with outputs.work_folder(None, "tile-classifier-") as work:
        inputs = work / "input_dir"
        inputs.mkdir()
        h5 = _model_file(model_path, model_uri, work)
        (inputs / h5.name).symlink_to(h5.resolve())
        if mask_uri:
            mask = storage.fetch_input(mask_uri, work / "mask")
            (inputs / mask.name).symlink_to(mask.resolve())
        result = run(str(inputs), mc_uri or composites_path, params, crop_map.path)
    crop_map.metadata.update({"crop_map": Path(result.crop_map).name, "stac": Path(result.stac).name,
                              **{k: v for k, v in result.metrics.items()}})
    for key, value in result.metrics.items():
        if isinstance(value, (int, float)):
            metrics.log_metric(key, value)
    rows = {v["name"]: f"{v['percent']} % ({v['hectares']} ha)" for v in result.class_areas.values()}
    Path(quicklook.path).write_text(html_page(Path(result.crop_map).name, result.quicklook, rows))
