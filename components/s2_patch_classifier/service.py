"""s2-patch-classifier: train a pixel classifier on Sentinel-2 tiles and labels, and classify new
tiles (seed D5.2 section 3.2.1).

Actions and what each writes into the output folder (``--outdir``):

- ``extract_data``: ``patches.json`` (main product: the index) + ``images.npy``,
  ``labels.npy``, ``positions.npy``;
- ``pretrain``: ``encoder_pretrained.pt`` (main product) + ``pretrain_history.json``;
- ``train``: the model (main product, ``model.pt`` or ``model.onnx``, or ``--model_file``) +
  ``metrics.json`` (IoU, F1 per class, confusion matrix, loss history); the input is a patch
  folder from ``extract_data`` or a folder of labelled tiles (extracted on the fly);
- ``predict``: per tile ``<tile>_classes.tif`` (main product, a COG with colour table) with its
  STAC item ``<tile>_classes.json`` and ``<tile>_classes_quicklook.png``;
- ``full``: ``patches/``, [``encoder_pretrained.pt``], the model, ``metrics.json`` and
  ``predictions/`` (the input tiles, or ``--predict_input``, classified).

Every run also writes ``run.json``. Everything is assembled in a temporary folder beside the
destination and moved into place at the end: a failed run leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio.errors
import torch

from components import __version__
from components.common import outputs, stac, storage
from components.common.cpus import cpu_quota
from components.common.errors import InvalidParameter, ServiceError
from components.common.logs import Steps

from . import modelio, patches as patchmod, radiometry, units
from .data import find_tiles
from .model import networks
from .params import S2PatchClassifierParams
from .predict import NODATA, FlipAveraged, open_predictor, predict_tile, to_cog
from .train import TrainConfig, resolve_device, train

log = logging.getLogger(__name__)

SERVICE = "s2-patch-classifier"
ENCODER_FILE = "encoder_pretrained.pt"
METRICS_FILE = "metrics.json"
ONNX_CHECK_TOLERANCE = 1e-3


@dataclass
class ClassifierResult:
    """What a run wrote. ``product`` is the main product of the action."""

    action: str
    product: str
    run_record: str
    model: str | None = None
    metrics: str | None = None
    patches: str | None = None
    encoder: str | None = None
    predictions: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)


def model_name(params: S2PatchClassifierParams) -> str:
    suffix = modelio.SUFFIX[params.model_format]
    if not params.model_file:
        return "model" + suffix
    name = Path(params.model_file).name
    if not Path(name).suffix:
        return name + suffix
    if Path(name).suffix.lower() not in (".pt", ".pth", ".onnx") or \
            (Path(name).suffix.lower() == ".onnx") != (params.model_format == "onnx"):
        raise InvalidParameter("model_file", params.model_file,
                               f"a file name ending in {suffix} for --model_format {params.model_format}")
    return name


def _check(params: S2PatchClassifierParams) -> None:
    """Problems visible from the parameters alone, before any work."""
    if params.action == "predict" and not params.model_file:
        raise InvalidParameter("model_file", None, "a model file (.pt or .onnx) to predict with (--action predict)")
    if params.action in ("train", "full"):
        model_name(params)
    if params.pretrained and params.action == "train" and not params.pretrained_weights:
        raise InvalidParameter("pretrained_weights", None, "an encoder checkpoint from --action pretrain "
                               "when --pretrained true with --action train")
    onnx_model = (params.action == "full" and params.model_format == "onnx") or \
        (params.action == "predict" and str(params.model_file).lower().endswith(".onnx"))
    if params.engine == "torch" and onnx_model:
        raise InvalidParameter("engine", params.engine, "auto, onnxruntime or openvino with an ONNX model")
    if params.engine == "openvino" and params.device == "cuda":
        raise InvalidParameter("engine", params.engine, "auto, onnxruntime or torch with --device cuda "
                               "(OpenVINO runs on the CPU)")
    resolve_device(params.device)


def run(input_uri: str, params: S2PatchClassifierParams, outdir: str) -> ClassifierResult:
    """Run ``params.action`` on ``input_uri`` (a folder, a file or an s3:// URI) into ``outdir``."""
    _check(params)
    with storage.output_folder(outdir) as local_out:
        return _run(input_uri, params, outdir, local_out)


def _limit_threads() -> None:
    """As many torch threads as the container may use: OpenMP threads beyond a pod's CPU limit
    wait on each other and slow training and inference down many times."""
    quota = cpu_quota()
    if quota is not None and torch.get_num_threads() > quota:
        log.info("CPU limit of %d: %d torch threads", quota, quota)
        torch.set_num_threads(quota)


def _run(input_uri: str, params: S2PatchClassifierParams, outdir: str, local_out: Path | None) -> ClassifierResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    device = resolve_device(params.device)
    _limit_threads()
    with outputs.work_folder(local_out, ".s2pc-") as work:
        stage = work / "stage"
        stage.mkdir()
        with steps.step("fetch inputs"):
            local_input = storage.fetch_input(input_uri, work / "input")
            extra = {}
            for name in ("model_file", "pretrained_weights", "predict_input"):
                value = getattr(params, name)
                needed = value and (name != "model_file" or params.action == "predict") and \
                    (name != "pretrained_weights" or params.pretrained)
                if needed:
                    extra[name] = _locate(storage.fetch_input(value, work / name), name)
        encoder = None
        if "pretrained_weights" in extra and params.action in ("train", "full"):
            with steps.step("check the pre-trained encoder"):  # before any patch is cut
                encoder = (*modelio.load_encoder(extra["pretrained_weights"]), extra["pretrained_weights"].name)
        result = ClassifierResult(params.action, "", "")
        summary = {}
        action = params.action
        if action == "predict":
            _predict(local_input, extra["model_file"], params, stage, device, steps, result, outdir, input_uri)
            summary = result.scores
        elif action == "extract_data":
            ps = _extract(local_input, params, stage, steps, labelled=True)
            result.patches = result.product = str(stage / patchmod.INDEX)
            summary = result.scores = {"patches": len(ps), "class_pixels": ps.index["class_pixels"]}
        elif action == "pretrain":
            _pretrain(local_input, params, stage, device, steps, result)
        else:  # train or full
            if action == "full":  # the tiles to classify after training: one that cannot be placed fails now
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    for tile in find_tiles(extra.get("predict_input", local_input)):
                        _check_georeferencing(tile)
            if action == "full" or not patchmod.is_patch_folder(local_input):
                folder = stage / "patches" if action == "full" else work / "patches"
                ps = _extract(local_input, params, folder, steps, labelled=True)
                if action == "full":
                    result.patches = str(folder / patchmod.INDEX)
            else:
                ps = patchmod.open_patches(local_input)
                _check_patches(ps, params)
            if params.pretrained and encoder is None:  # full: pre-train on the input tiles first
                path = _pretrain(local_input, params, stage, device, steps, result, patches=ps)
                encoder = (*modelio.load_encoder(path), path.name)
            _train(ps, params, stage, device, steps, result, encoder)
            if action == "full":
                target = extra.get("predict_input", local_input)
                (stage / "predictions").mkdir()
                _predict(target, Path(result.model), params, stage / "predictions", device, steps, result,
                         stac.location(outdir, "predictions"), params.predict_input or input_uri, main=False)
            summary = result.scores
        record = outputs.run_record(
            SERVICE, __version__, params.as_dict(), [{"uri": input_uri}] +
            [{"uri": getattr(params, k), "role": k} for k in extra], {**_relative(result, stage), "summary": summary},
            steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        with steps.step("publish"):
            published = storage.publish(stage, outdir, move=True)
    by_rel = {_rel_key(p, outdir): p for p in published}
    for name in ("product", "model", "metrics", "patches", "encoder"):
        value = getattr(result, name)
        if value:
            setattr(result, name, by_rel[Path(value).relative_to(stage).as_posix()])
    result.predictions = [by_rel[Path(p).relative_to(stage).as_posix()] for p in result.predictions]
    result.run_record = by_rel["run.json"]
    log.info("%s done: %s (%.1f s)", params.action, result.product, steps.elapsed)
    return result


def _locate(path: Path, role: str) -> Path:
    """A folder given for a model or an encoder (an output folder of train/pretrain, or a KFP
    artifact) stands for the file inside it."""
    if role == "predict_input" or not path.is_dir():
        return path
    if role == "pretrained_weights":
        found = [path / ENCODER_FILE] if (path / ENCODER_FILE).is_file() else []
    else:
        named = _model_named_in(path / "run.json")
        found = [path / named] if named and (path / named).is_file() else \
            sorted(p for p in path.iterdir() if p.suffix.lower() in (".pt", ".pth", ".onnx") and p.name != ENCODER_FILE)
    if len(found) != 1:
        what = "an encoder_pretrained.pt" if role == "pretrained_weights" else "one model file (.pt or .onnx)"
        raise ServiceError(f"--{role} {path} is a folder without {what}")
    return found[0]


def _model_named_in(record: Path) -> str | None:
    """The model file named by the run.json of a train output folder (None without a usable one)."""
    try:
        named = json.loads(record.read_text()).get("outputs", {}).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return named if isinstance(named, str) and named and "/" not in named else None


def _rel_key(published: str, outdir: str) -> str:
    if storage.is_s3(outdir):
        prefix = outdir.rstrip("/") + "/"
        return published[len(prefix):] if published.startswith(prefix) else published.split("/", 3)[-1]
    return Path(published).relative_to(Path(outdir)).as_posix()


def _relative(result: ClassifierResult, stage: Path) -> dict:
    out = {}
    for name in ("product", "model", "metrics", "patches", "encoder"):
        value = getattr(result, name)
        if value:
            out[name] = Path(value).relative_to(stage).as_posix()
    out["predictions"] = [Path(p).relative_to(stage).as_posix() for p in result.predictions]
    return out


# ------------------------------------------------------------------------------------------


def _extract(source: Path, params: S2PatchClassifierParams, folder: Path, steps: Steps, labelled: bool):
    with steps.step("find tiles"):
        tiles = find_tiles(source)
    log.info("%d tile(s): %s", len(tiles), ", ".join(t.name for t in tiles[:10]) + (" ..." if len(tiles) > 10 else ""))
    with steps.step("extract patches"):
        return patchmod.extract(tiles, folder, params.bands, params.patch_size, params.classes, params.simplified,
                                labelled=labelled, seed=params.seed, dark_object=params.dark_object,
                                stride=params.patch_stride if labelled else None)


def _check_patches(ps: patchmod.PatchSet, params: S2PatchClassifierParams) -> None:
    """A patch folder given to train must match the parameters it would be trained with."""
    idx = ps.index
    if params.bands and tuple(params.bands) != tuple(idx["bands"]):
        raise ServiceError(f"the patches hold bands {','.join(idx['bands'])}, not --bands {','.join(params.bands)}")
    if idx["patch_size"] != params.patch_size:
        raise ServiceError(f"the patches are {idx['patch_size']} px, not --patch_size {params.patch_size}")
    if bool(idx.get("dark_object")) != params.dark_object:
        raise ServiceError(f"the patches were extracted {'with' if idx.get('dark_object') else 'without'} "
                           f"--dark_object, not trained {'with' if params.dark_object else 'without'} it")
    if idx.get("labelled") and idx["classes"][1:] != list(params.classes):
        raise ServiceError(f"the patches were extracted for classes {','.join(map(str, idx['classes'][1:]))}, "
                           f"not --selected-classes {','.join(params.selected_classes)}")


def _pretrain(source: Path, params: S2PatchClassifierParams, stage: Path, device, steps: Steps,
              result: ClassifierResult, patches: patchmod.PatchSet | None = None) -> Path:
    from .pretrain import pretrain

    if patches is None:
        if patchmod.is_patch_folder(source):
            patches = patchmod.open_patches(source)
        else:
            patches = _extract(source, params, Path(tempfile.mkdtemp(dir=stage.parent, prefix="unlabelled-")),
                               steps, labelled=False)
    epochs = params.pretrain_epochs or params.epochs
    with steps.step("self-supervised pre-training (MoCo v2)"):
        encoder, history = pretrain(patches.images, patches.stats, encoder=params.encoder, width=params.width,
                                    epochs=epochs, batch_size=params.batch_size, lr=params.lr, device=device,
                                    seed=params.seed)
    meta = {"service_version": __version__, "method": "MoCo v2", "encoder": params.encoder, "width": params.width,
            "in_channels": len(patches.bands), "bands": list(patches.bands), "stats": patches.stats,
            "patch_size": patches.index["patch_size"], "epochs": len(history), "patches": len(patches),
            "dark_object": bool(patches.index.get("dark_object")),
            "input_unit": units.of_meta(patches.index, "unit")[0]}
    path = modelio.save_encoder(stage / ENCODER_FILE, encoder, meta)
    outputs.write_json(stage / "pretrain_history.json", {"method": "MoCo v2", "history": history})
    result.encoder = str(path)
    if params.action == "pretrain":
        result.product = str(path)
    return path


def _train(ps: patchmod.PatchSet, params: S2PatchClassifierParams, stage: Path, device, steps: Steps,
           result: ClassifierResult, encoder: tuple[dict, dict, str] | None) -> None:
    """``encoder``: (weights, metadata) of :func:`modelio.load_encoder` and the file's name, with
    ``--pretrained``."""
    state, stats = None, None
    if params.pretrained:
        state, emeta, name = encoder
        if list(emeta["bands"]) != list(ps.bands):
            raise ServiceError(f"{name}: the pre-trained encoder was trained on bands {','.join(emeta['bands'])}, "
                               f"the patches hold {','.join(ps.bands)}")
        if (emeta["encoder"], emeta["width"]) != (params.encoder, params.width):
            raise ServiceError(f"{name}: the pre-trained encoder is {emeta['encoder']} of width {emeta['width']}, "
                               f"not --encoder {params.encoder} --width {params.width}")
        seen = emeta.get("dark_object")  # absent from checkpoints older than --dark_object
        if seen is not None and seen != bool(ps.index.get("dark_object")):
            raise ServiceError(f"{name}: the pre-trained encoder saw patches {'with' if seen else 'without'} "
                               f"--dark_object, these patches are {'without' if seen else 'with'} it")
        stats = emeta["stats"]
        seen, patches_unit = units.of_meta(emeta)[0], units.of_meta(ps.index, "unit")[0]
        if seen != patches_unit:
            raise ServiceError(f"{name}: the pre-trained encoder saw values in {seen}, these patches hold "
                               f"{patches_unit}: pre-train again on these patches")
    cfg = TrainConfig(criterion=params.criterion, epochs=params.epochs, batch_size=params.batch_size, lr=params.lr,
                      data_aug=params.data_aug, val_fraction=params.val_fraction, seed=params.seed,
                      device=device.type, encoder=params.encoder, width=params.width, pretrained_encoder=state,
                      stats=stats, batch_scaling=params.batch_scaling, indices=params.indices,
                      members=params.ensemble, mixed_windows=params.ensemble_windows == "mixed",
                      gap_weight=params.gap_weight, hard_negatives=params.hard_negatives, shift=params.shift,
                      focal_alpha=params.focal_alpha, shore_weight=params.shore_weight,
                      head_prior=params.head_prior, restarts=params.restarts, scale_jitter=params.scale_jitter)
    with steps.step("train"):
        res = train(ps, cfg)
    classes = ps.index["classes"]
    meta = modelio.base_meta(res.model.arch, ps.bands, classes,
                             ps.index["patch_size"], stats or ps.stats, ps.index["simplified"],
                             len(networks(res.model)), unit=units.of_meta(ps.index, "unit")[0])
    if ps.index.get("dark_object"):
        meta["dark_object"] = ps.index["dark_object"]
    meta["training"] = {"criterion": params.criterion, "epochs": params.epochs, "batch_size": params.batch_size,
                        "batch_scaling": params.batch_scaling, "indices": list(params.indices), "lr": params.lr,
                        "data_aug": params.data_aug, "pretrained": params.pretrained, "quantize": params.quantize,
                        "ensemble": params.ensemble, "ensemble_windows": params.ensemble_windows,
                        "gap_weight": params.gap_weight, "hard_negatives": params.hard_negatives,
                        "shift": params.shift, "scale_jitter": params.scale_jitter, "focal_alpha": params.focal_alpha,
                        "shore_weight": params.shore_weight, "head_prior": params.head_prior, "restarts": params.restarts, "seed": params.seed,
                        "patches": len(ps), "best_epoch": res.metrics["best_epoch"]}
    name = model_name(params)
    path = stage / name
    with steps.step(f"save {params.model_format} model"):
        if params.model_format == "onnx":
            from .onnx_export import export

            if params.quantize == "int8":
                fp32 = path.with_name(path.stem + ".fp32.onnx")
                export(res.model, fp32, meta, ps.index["patch_size"])
                _check_onnx(res.model, fp32, meta, ps)
                res.metrics["int8_agreement"] = _quantize(res.model, fp32, path, meta, ps, res)
                fp32.unlink()
            else:
                export(res.model, path, meta, ps.index["patch_size"])
                _check_onnx(res.model, path, meta, ps)
        else:
            modelio.save_pytorch(path, res.model, meta)
    metrics = {**res.metrics, "history": res.history, "model": name}
    outputs.write_json(stage / METRICS_FILE, metrics)
    result.model, result.metrics = str(path), str(stage / METRICS_FILE)
    result.scores = {k: res.metrics[k] for k in ("mean_iou", "mean_foreground_iou", "accuracy")}
    result.scores["per_class"] = {c: {m: v[m] for m in ("iou", "f1")} for c, v in res.metrics["per_class"].items()}
    if params.action == "train" or params.action == "full":
        result.product = str(path)


def _check_onnx(model, path: Path, meta: dict, ps: patchmod.PatchSet) -> None:
    """The exported file must give PyTorch's probabilities (ONNX Runtime on one real patch)."""
    from .predict import OnnxPredictor

    x = np.nan_to_num(np.asarray(ps.images[:1], np.float32), nan=0.0)
    with torch.no_grad():
        ref = torch.softmax(model.eval()(torch.from_numpy(x)), 1).numpy()
    got = OnnxPredictor(path, meta, torch.device("cpu"))(x)
    diff = float(np.abs(ref - got).max())
    if not diff <= ONNX_CHECK_TOLERANCE:
        raise ServiceError(f"the ONNX export differs from the PyTorch model by {diff:.2e} (> {ONNX_CHECK_TOLERANCE})")
    log.info("ONNX export checked with ONNX Runtime: max probability difference %.1e", diff)


def _quantize(model, fp32: Path, path: Path, meta: dict, ps: patchmod.PatchSet, res) -> float:
    """int8 model calibrated on up to 32 training patches; returns the share of validation pixels
    whose class agrees with the PyTorch model."""
    from .onnx_export import quantize_int8
    from .predict import OnnxPredictor

    rng = np.random.default_rng(0)
    calib_idx = np.sort(rng.choice(res.train_index, size=min(32, len(res.train_index)), replace=False))
    quantize_int8(fp32, path, np.asarray(ps.images[calib_idx], np.float32), meta)
    check_idx = res.val_index if len(res.val_index) else res.train_index
    x = np.nan_to_num(np.asarray(ps.images[np.sort(check_idx[:16])], np.float32), nan=0.0)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    got = OnnxPredictor(path, meta, torch.device("cpu"))(x).argmax(1)
    agreement = float((ref == got).mean())
    (log.warning if agreement < 0.99 else log.info)(
        "int8 model: %.2f %% of the checked pixels keep the PyTorch class", 100 * agreement)
    return round(agreement, 5)


def _predict(source: Path, model_file: Path, params: S2PatchClassifierParams, folder: Path, device, steps: Steps,
             result: ClassifierResult, published: str, source_uri: str, main: bool = True) -> None:
    """Classify every tile of ``source`` into ``folder`` (published as ``published``)."""
    with steps.step("open model"):
        predictor = open_predictor(model_file, device, engine=params.engine)
        if params.flips:
            predictor = FlipAveraged(predictor)
    meta = predictor.meta
    unit, recorded = units.of_meta(meta)
    if not recorded:
        log.info("%s records no input unit (an earlier version's file): %s, as its normalisation statistics tell",
                 Path(model_file).name, unit)
    with steps.step("find tiles"), warnings.catch_warnings():
        # a tile without georeferencing is refused below in one line, not warned about by rasterio
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        tiles = find_tiles(source)
        for t in tiles:  # every tile checked before any is classified
            _check_tile(t, meta, Path(model_file).name)
            t.unit_factor = units.FACTOR[unit]
    units.log_decisions(tiles, unit)
    names = set()
    for t in tiles:
        stem = f"{t.name}_classes"
        if stem in names:
            raise ServiceError(f"two tiles named {t.name}")
        names.add(stem)
        if meta.get("dark_object"):
            radiometry.correct(t, tuple(meta["bands"]), meta["dark_object"])
        raw = folder.parent / f".{stem}.raw.tif"
        with steps.step(f"predict {t.name}"):
            res = predict_tile(t, predictor, params.overlap, raw, params.grow_threshold, params.seed_threshold,
                               params.split_depth)
            tif = to_cog(raw, folder / f"{stem}.tif")
            outputs.write_categories(tif, _classes(meta))  # GDAL's class names: the .aux.xml beside it
            raw.unlink()
        ql = outputs.class_quicklook(tif, folder / f"{stem}_quicklook.png", _classes(meta))
        _write_stac(stem, tif, ql, t, meta, res.class_pixels, folder, published,
                    [(source_uri, t.name), (params.model_file or str(model_file), f"model {Path(model_file).name}")])
        result.predictions.append(str(tif))
        log.info("product %s: %s, %d windows, %.1f s", tif.name, res.class_pixels, res.windows, res.seconds)
    if main:
        result.product = result.predictions[0]
    result.scores.setdefault("engine", predictor.engine)


def _classes(meta: dict, class_pixels: dict | None = None) -> list[stac.Class]:
    """The model's legend: for the STAC item, GDAL's category names and the quicklook."""
    return [*[stac.Class(int(c), f"class_{c}", color=tuple(rgb[:3]), count=(class_pixels or {}).get(str(c)))
              for c, rgb in zip(meta["classes"], meta["colours"])],
            stac.Class(NODATA, "no_data", "no data", nodata=True)]


def _write_stac(stem: str, tif: Path, ql: Path, tile, meta: dict, class_pixels: dict, folder: Path, published: str,
                sources: list[tuple[str, str]]) -> None:
    band = stac.Band("class", "class index of the model's legend, 255 no data", NODATA)
    item = stac.raster_item(stem, tif, tif.name, _date_of(tile), [band],
                            title=f"{tile.name} classified by s2-patch-classifier",
                            properties={"bands_used": list(meta["bands"])})
    stac.add_classes(item, _classes(meta, class_pixels))
    stac.add_processing(item, lineage=f"{SERVICE}: sliding-window U-Net classification")
    stac.add_sidecars(item, ql.name, record=None)  # run.json is written after the predictions
    stac.add_links(item, stac.location(published, f"{stem}.json"), sources)
    stac.write_item(item, folder / f"{stem}.json")


def _check_georeferencing(tile) -> None:
    """A tile's class map and STAC item are placed by its CRS and geotransform."""
    files = ", ".join(Path(s).name for s in tile.sources[:2])
    if not tile.crs:
        raise ServiceError(f"tile {tile.name} ({files}) has no coordinate reference system: the class map could not "
                           "be placed on the map; give the tile its CRS (e.g. gdal_edit.py -a_srs EPSG:32633)")
    if tile.transform is None or tile.transform.is_identity:  # what GDAL gives a file without one
        raise ServiceError(f"tile {tile.name} ({files}) has no geotransform (pixel size and origin): the class map "
                           "could not be placed on the map; give the tile its geotransform (gdal_edit.py -a_ullr)")


def _check_tile(tile, meta: dict, model_name: str) -> None:
    """A tile must hold the bands the model takes, be at least one window large, and be georeferenced
    (the class map and its STAC item are placed by the tile's CRS)."""
    _check_georeferencing(tile)
    try:
        tile.check_bands(tuple(meta["bands"]))
    except ServiceError as e:
        raise ServiceError(f"{e.one_line()}; the model {model_name} takes {', '.join(meta['bands'])}") from None
    p = meta["patch_size"]
    if tile.width < p or tile.height < p:
        raise ServiceError(f"tile {tile.name} is {tile.height}x{tile.width} px, smaller than the {p} px windows of "
                           f"the model {model_name}: give tiles of at least {p}x{p} px")
    tile.resolve_units()  # values of no known unit: refused before any tile is classified


_DATE = re.compile(r"(20\d\d)-?([01]\d)-?([0-3]\d)")


def _date_of(tile) -> dt.datetime:
    """Acquisition date from the file names (S2 names and most exports carry one), else now."""
    for src in tile.sources:
        m = _DATE.search(Path(src).name)
        if m:
            try:
                return dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=dt.timezone.utc)
            except ValueError:
                continue
    return dt.datetime.now(dt.timezone.utc)


def dumps(result: ClassifierResult) -> str:
    return json.dumps(result.__dict__, indent=2, default=str)

