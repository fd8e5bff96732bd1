"""The four aqgan services as plain functions: configuration and inputs in, products out.

- :func:`run_preproc`: read, regrid and align the inputs of one dataset over a time range and
  write normalised training tiles with their statistics (``tiles.nc``) and ``run.json``;
- :func:`run_train`: train the SRGAN (Wasserstein + gradient penalty) on the tiles of a time
  range; checkpoints while training, ``model.pt``, ``losses.csv`` and ``run.json`` at the end;
- :func:`run_generate`: N ensemble members per time step over the AoI -> CF netCDF (members, mean,
  std, quantiles), a CSV at the configured points, a quicklook PNG and ``run.json``;
- :func:`run_predict`: one low-resolution netCDF and a model file -> one ensemble netCDF.

Products are staged in a temporary folder beside the destination and moved into place at the
end, so that a failed run leaves nothing behind (training checkpoints excepted: they are kept
on purpose, for ``--resume``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components import __version__
from components.common import outputs, storage
from components.common.errors import ServiceError, from_os_error
from components.common.logs import Progress, Steps

from . import data as D
from .config import Config, dump_config
from .grid import Grid, Regridder
from .normalise import compute_stats, normalise
from .tiles import find_tiles, read_tiles, write_tiles

log = logging.getLogger(__name__)

SERVICE = "aqgan"


@dataclass
class Result:
    """What a run wrote: ``product`` is the main product, the rest its sidecars."""

    product: str
    files: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


@contextlib.contextmanager
def _staged(outdir: str):
    """Yield (work, stage) folders; on success move stage's files to ``outdir``. Local folders
    created for the run are removed again if the run fails before writing into them."""
    storage.check_writable(outdir)
    created: list[Path] = []
    if storage.is_s3(outdir):
        parent = None
    else:
        out = Path(outdir)
        p = out
        while not p.exists():
            created.append(p)
            p = p.parent
        parent = out
    published: dict = {}
    try:
        if parent is not None:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise from_os_error(exc, f"cannot create output folder {outdir}") from None
        with outputs.work_folder(parent, ".aqgan-") as work:
            stage = work / "stage"
            stage.mkdir()
            holder: dict = {}
            yield work, stage, holder
            for path in storage.publish(stage, outdir, move=True):
                published[Path(path).name] = path
            holder.update(published)
    except BaseException:
        for p in created:
            with contextlib.suppress(OSError):
                p.rmdir()
        if parent is None:
            storage.remove_created_bucket(outdir)
        raise


def _dates(start: str, end: str) -> tuple[np.datetime64, np.datetime64]:
    s, e = D.parse_date(start, "start-date"), D.parse_date(end, "end-date")
    D.check_range(s, e)
    return s, e


# ------------------------------------------------------------------------------------------------
# aqgan-preproc


def run_preproc(cfg: Config, dataset: str | None, start: str, end: str, outdir: str | None = None) -> Result:
    started = dt.datetime.now(dt.timezone.utc)
    t0, t1 = _dates(start, end)
    name, ds = cfg.dataset(dataset)
    lr_grid, hr_grid = D.grids(cfg)
    (fh, fw), factor = cfg.model.input_frame, cfg.factor
    if lr_grid.rows < fh or lr_grid.cols < fw:
        raise ServiceError(f"the AoI gives a low-resolution grid of {lr_grid.rows}x{lr_grid.cols} cells of "
                           f"{lr_grid.res:g}°, smaller than model.input_frame {fh}x{fw}: enlarge the AoI")
    stride = cfg.preproc.tile_stride or fh
    lr_vars, hr_vars, st_vars = cfg.inputs.low_res, cfg.outputs.high_res, cfg.inputs.high_res_static
    outdir = outdir or str(Path(cfg.resolve(cfg.paths.tiles)) / name / f"{D.fmt_time(t0)}-{D.fmt_time(t1)}")
    steps = Steps(log)
    with _staged(outdir) as (work, stage, published):
        with steps.step("open inputs"):
            inputs = D.open_dataset(cfg, name, ds, lr_vars, hr_vars, work / "inputs")
            times = D.common_times(inputs, lr_vars, hr_vars, t0, t1)
        log.info("dataset %s: %d time steps %s..%s; low-resolution grid %s; high-resolution grid %s", name,
                 times.size, D.fmt_time(times[0]), D.fmt_time(times[-1]), lr_grid.describe(), hr_grid.describe())
        with steps.step("static fields"):
            static, static_params = D.read_statics(cfg, ds, st_vars, hr_grid, cfg.preproc.regrid, work / "static")
        lr = np.empty((times.size, len(lr_vars), lr_grid.rows, lr_grid.cols))
        hr = np.empty((times.size, len(hr_vars), hr_grid.rows, hr_grid.cols))
        progress = Progress(times.size, "read and regrid")
        with steps.step("read and regrid"):
            for i, when in enumerate(times):
                lr[i] = D.read_lr(inputs, lr_vars, when, lr_grid, cfg.preproc.regrid)
                hr[i] = D.read_hr(inputs, hr_vars, when, hr_grid, cfg.preproc.regrid)
                progress.advance()
        with steps.step("statistics and tiles"):
            stats = compute_stats({**{v: lr[:, i] for i, v in enumerate(lr_vars) if v not in hr_vars},
                                   **{v: hr[:, i] for i, v in enumerate(hr_vars)},
                                   **{v: static[i] for i, v in enumerate(st_vars)}})
            lr_n = np.stack([normalise(lr[:, i], stats[v]) for i, v in enumerate(lr_vars)], 1)
            hr_n = np.stack([normalise(hr[:, i], stats[v]) for i, v in enumerate(hr_vars)], 1)
            st_n = np.stack([normalise(static[i], stats[v]) for i, v in enumerate(st_vars)]) if st_vars else \
                np.zeros((0, hr_grid.rows, hr_grid.cols), np.float32)
            origins = [(r, c) for r in range(0, lr_grid.rows - fh + 1, stride)
                       for c in range(0, lr_grid.cols - fw + 1, stride)]
            tiles_lr, tiles_hr, tiles_t, tiles_p = [], [], [], []
            dropped = 0
            for ti in range(times.size):
                for p, (r, c) in enumerate(origins):
                    a = lr_n[ti, :, r:r + fh, c:c + fw]
                    b = hr_n[ti, :, r * factor:(r + fh) * factor, c * factor:(c + fw) * factor]
                    if not (np.isfinite(a).all() and np.isfinite(b).all()):
                        dropped += 1
                        continue
                    tiles_lr.append(a)
                    tiles_hr.append(b)
                    tiles_t.append(times[ti])
                    tiles_p.append(p)
            if not tiles_lr:
                raise ServiceError(f"every tile has missing values in the inputs ({dropped} tiles dropped)")
            if dropped:
                log.warning("%d tiles with missing values dropped", dropped)
            st_tiles = np.stack([st_n[:, r * factor:(r + fh) * factor, c * factor:(c + fw) * factor]
                                 for r, c in origins])
            main = stage / "tiles.nc"
            write_tiles(main, np.stack(tiles_lr), np.stack(tiles_hr), st_tiles, st_n, np.array(tiles_t),
                        np.array(tiles_p),
                        np.array(origins), lr_vars, hr_vars, st_vars, stats, static_params, lr_grid, factor,
                        {"dataset": name, "start": D.fmt_time(t0), "end": D.fmt_time(t1),
                         "input_frame": list(cfg.model.input_frame), "output_frame": list(cfg.model.output_frame),
                         "sources": {v: inputs.lr_source[v].kind for v in lr_vars},
                         "history": f"{started:%Y-%m-%dT%H:%M:%SZ} aqgan-preproc {__version__}"})
        metrics = {"time_steps": int(times.size), "tiles": len(tiles_lr), "tiles_dropped": dropped,
                   "positions": len(origins), "lr_grid": lr_grid.as_dict(), "hr_grid": hr_grid.as_dict(),
                   "sources": {v: inputs.lr_source[v].kind for v in lr_vars},
                   "statistics": stats, "static": static_params}
        record = outputs.run_record("aqgan-preproc", __version__, cfg.as_dict(), inputs.files(),
                                    {"product": "tiles.nc", "metrics": metrics}, steps.timings, started)
        outputs.write_json(stage / "run.json", record)
    log.info("tiles %s: %d tiles (%d positions x %d times) of %dx%d -> %dx%d, %.1f MB, %.1f s",
             published["tiles.nc"], len(tiles_lr), len(origins), times.size, fh, fw, fh * factor, fw * factor,
             _size_mb(published["tiles.nc"]), steps.elapsed)
    return Result(published["tiles.nc"], {"run_record": published["run.json"]}, metrics)


def _size_mb(path: str) -> float:
    return Path(path).stat().st_size / 1e6 if not storage.is_s3(path) and Path(path).exists() else 0.0


# ------------------------------------------------------------------------------------------------
# aqgan-train


def _load_training_tiles(files: list[Path], t0, t1):
    """Tiles of [t0, t1] from every file, brought to one set of statistics (recomputed on the
    selected tiles, in physical values)."""
    from .normalise import denormalise

    sets = [read_tiles(f) for f in files]
    first = sets[0]
    for s in sets[1:]:
        same = (s.lr_vars, s.hr_vars, s.static_vars, s.lr_grid, s.factor, s.lr.shape[2:], s.hr.shape[2:]) == \
            (first.lr_vars, first.hr_vars, first.static_vars, first.lr_grid, first.factor, first.lr.shape[2:],
             first.hr.shape[2:])
        if not same:
            raise ServiceError(f"tiles files {first.path} and {s.path} differ in variables, AoI grid or frames")
    sel = [(s, (s.time >= t0) & (s.time <= t1)) for s in sets]
    if not any(m.any() for _, m in sel):
        spans = ", ".join(f"{s.path.parent.name}: {D.fmt_time(s.time.min())}..{D.fmt_time(s.time.max())}"
                          for s in sets)
        raise ServiceError(f"no training tiles between {D.fmt_time(t0)} and {D.fmt_time(t1)} ({spans}): run "
                           "aqgan-preproc for that range first")
    phys_lr, phys_hr, times, pos = [], [], [], []
    for s, m in sel:
        if not m.any():
            continue
        phys_lr.append(np.stack([denormalise(s.lr[m, i], s.stats[v]) for i, v in enumerate(s.lr_vars)], 1))
        phys_hr.append(np.stack([denormalise(s.hr[m, i], s.stats[v]) for i, v in enumerate(s.hr_vars)], 1))
        times.append(s.time[m])
        pos.append(s.position[m])
    lr, hr = np.concatenate(phys_lr), np.concatenate(phys_hr)
    static_phys = np.stack([denormalise(first.static[:, i], first.stats[v]) for i, v in enumerate(first.static_vars)],
                           1) if first.static_vars else first.static
    stats = compute_stats({**{v: lr[:, i] for i, v in enumerate(first.lr_vars) if v not in first.hr_vars},
                           **{v: hr[:, i] for i, v in enumerate(first.hr_vars)},
                           **{v: static_phys[:, i] for i, v in enumerate(first.static_vars)}})
    lr_n = np.stack([normalise(lr[:, i], stats[v]) for i, v in enumerate(first.lr_vars)], 1)
    hr_n = np.stack([normalise(hr[:, i], stats[v]) for i, v in enumerate(first.hr_vars)], 1)
    st_n = np.stack([normalise(static_phys[:, i], stats[v]) for i, v in enumerate(first.static_vars)], 1) \
        if first.static_vars else first.static
    return first, lr_n, hr_n, st_n, np.concatenate(pos), np.concatenate(times), stats


def run_train(cfg: Config, dataset: str | None, start: str, end: str, resume: bool = False,
              tiles: str | None = None, models_dir: str | None = None) -> Result:
    import torch

    from .generation import save_model
    from .training import TrainData, arch_of, batch_and_rate, select_device, train

    started = dt.datetime.now(dt.timezone.utc)
    t0, t1 = _dates(start, end)
    name, ds = cfg.dataset(dataset)
    device = select_device(cfg.training.device)
    tiles_path = Path(tiles or Path(cfg.resolve(cfg.paths.tiles)) / name)
    files = find_tiles(tiles_path)
    if not files:
        raise ServiceError(f"no tiles in {tiles_path}: run aqgan-preproc --dataset {name} first")
    models_dir = models_dir or cfg.resolve(cfg.paths.models)
    if resume and storage.is_s3(models_dir):
        raise ServiceError("--resume needs a local paths.models folder (checkpoints are local files)")
    steps = Steps(log)
    with steps.step("load tiles"):
        first, lr_n, hr_n, st_n, pos, times, stats = _load_training_tiles(files, t0, t1)
    if (list(first.lr_vars), list(first.hr_vars), list(first.static_vars)) != \
            (list(cfg.inputs.low_res), list(cfg.outputs.high_res), list(cfg.inputs.high_res_static)):
        raise ServiceError(f"the tiles in {tiles_path} hold other variables than the configuration (tiles: "
                           f"{', '.join(first.lr_vars)} -> {', '.join(first.hr_vars)}): run aqgan-preproc again")
    if tuple(first.lr.shape[2:]) != tuple(cfg.model.input_frame) or first.factor != cfg.factor:
        raise ServiceError(f"the tiles in {tiles_path} have {first.lr.shape[2]}x{first.lr.shape[3]} frames and "
                           f"factor {first.factor}, the configuration {cfg.model.input_frame[0]}x"
                           f"{cfg.model.input_frame[1]} and factor {cfg.factor}: run aqgan-preproc again")
    variables = {"low_res": list(first.lr_vars), "high_res": list(first.hr_vars), "static": list(first.static_vars)}
    arch = arch_of(cfg, first.lr_vars, first.hr_vars, first.static_vars)
    data = TrainData(torch.from_numpy(lr_n), torch.from_numpy(hr_n), torch.from_numpy(st_n.astype(np.float32)),
                     torch.from_numpy(pos.astype(np.int64)), {"variables": variables})
    batch, rate = batch_and_rate(cfg.training.batch_size, cfg.training.learning_rate, cfg.training.batch_scaling)
    log.info("training srgan on %d tiles (%s..%s) on %s: %d epochs, batch %d, lr %g", lr_n.shape[0],
             D.fmt_time(times.min()), D.fmt_time(times.max()), device, cfg.training.epochs,
             min(batch, lr_n.shape[0]), rate)
    local_models = None if storage.is_s3(models_dir) else Path(models_dir)
    with _staged(models_dir) as (work, stage, published):
        ckpt_dir = (local_models / "checkpoints") if local_models else work / "checkpoints"
        with steps.step("train"):
            gen, history = train(cfg, data, arch, ckpt_dir, resume, device)
        with steps.step("write model"):
            # static fields of the whole training AoI, normalised, for aqgan-predict
            lr_grid = first.lr_grid
            full_static = _assemble_static(first, stats)
            save_model(stage / "model.pt", gen, arch, variables, stats, first.static_params, lr_grid, full_static,
                       dump_config(cfg), history,
                       {"epochs": len(history), "dataset": name, "train_start": D.fmt_time(t0),
                        "train_end": D.fmt_time(t1), "created": started.isoformat(),
                        "trained_on": str(device), "tiles": int(lr_n.shape[0])})
            _write_losses(stage / "losses.csv", history)
        metrics = {"epochs": len(history), "tiles": int(lr_n.shape[0]), "device": str(device),
                   "final": history[-1] if history else {}}
        record = outputs.run_record("aqgan-train", __version__, cfg.as_dict(), [{"uri": str(f)} for f in files],
                                    {"product": "model.pt", "losses": "losses.csv", "metrics": metrics},
                                    steps.timings, started)
        outputs.write_json(stage / "run.json", record)
    log.info("model %s: %d epochs on %d tiles, %.1f s", published["model.pt"], len(history), lr_n.shape[0],
             steps.elapsed)
    return Result(published["model.pt"], {"losses": published["losses.csv"], "run_record": published["run.json"],
                                          "history": history}, metrics)


def _assemble_static(ts, stats: dict) -> np.ndarray:
    """Static fields over the whole AoI grid, renormalised with ``stats``."""
    from .normalise import denormalise

    return np.stack([normalise(denormalise(ts.static_aoi[i], ts.stats[v]), stats[v])
                     for i, v in enumerate(ts.static_vars)]) if ts.static_vars else ts.static_aoi


def _write_losses(path: Path, history: list[dict]) -> None:
    import csv

    from .training import HISTORY_KEYS

    with outputs.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(HISTORY_KEYS))
            w.writeheader()
            for row in history:
                w.writerow({k: row.get(k) for k in HISTORY_KEYS})


# ------------------------------------------------------------------------------------------------
# aqgan-generate and aqgan-predict


def run_generate(cfg: Config, dataset: str | None, start: str, end: str, model_file: str | None = None,
                 outdir: str | None = None, members: int | None = None, seed: int | None = None) -> Result:
    from .generation import generate, load_model, write_ensemble_netcdf, write_points_csv

    started = dt.datetime.now(dt.timezone.utc)
    t0, t1 = _dates(start, end)
    name, ds = cfg.dataset(dataset)
    members = members or cfg.outputs.ensemble_size
    model_path = model_file or str(Path(cfg.resolve(cfg.paths.models)) / "model.pt")
    outdir = outdir or cfg.resolve(cfg.paths.output)
    steps = Steps(log)
    with _staged(outdir) as (work, stage, published):
        with steps.step("load model"):
            model = load_model(_local(model_path, work / "model"))
        unknown = [v for v in model.static_variables if v not in ds.static]
        if unknown:
            raise ServiceError(f"{Path(model_path).name} needs the static input {', '.join(unknown)}, which "
                               f"dataset {name} does not configure (paths.datasets.{name}.static)")
        lr_grid, hr_grid = D.grids(cfg, model.factor, model.lr_grid.res / 1.0 / model.factor)
        with steps.step("open inputs"):
            inputs = D.open_dataset(cfg, name, ds, tuple(model.lr_variables), (), work / "inputs")
            times = D.common_times(inputs, model.lr_variables, (), t0, t1)
        with steps.step("static fields"):
            static, _ = D.read_statics(cfg, ds, model.static_variables, hr_grid, cfg.preproc.regrid, work / "static",
                                       params=model.static_params)
            static_n = np.stack([normalise(static[i], model.stats[v]) for i, v in enumerate(model.static_variables)]) \
                if model.static_variables else np.zeros((0, hr_grid.rows, hr_grid.cols), np.float32)
        with steps.step("read and regrid"):
            lr = np.stack([D.read_lr(inputs, model.lr_variables, t, lr_grid, cfg.preproc.regrid) for t in times])
        _check_finite(lr, "low-resolution inputs")
        with steps.step(f"generate {members} members x {times.size} time steps"):
            ens = generate(model, lr, static_n, members, cfg.training.seed if seed is None else seed,
                           progress=Progress(times.size, "generate"))
        stem = f"aqgan_{name}_{D.fmt_time(t0)}_{D.fmt_time(t1)}"
        with steps.step("write netCDF, CSV, quicklook"):
            summary = write_ensemble_netcdf(stage / f"{stem}.nc", times, hr_grid, model.hr_variables, ens,
                                            cfg.outputs.quantiles,
                                            {"command": "aqgan-generate", "dataset": name,
                                             "model_file": Path(model_path).name})
            rows = write_points_csv(stage / f"{stem}_points.csv", times, hr_grid, model.hr_variables, ens,
                                    cfg.outputs.points, cfg.outputs.quantiles)
            quicklook(stage / f"{stem}_quicklook.png", ens[0, :, 0])
        metrics = {"time_steps": int(times.size), "members": members, "csv_rows": rows, "grid": hr_grid.as_dict(),
                   "variables": summary}
        record = outputs.run_record("aqgan-generate", __version__, cfg.as_dict(),
                                    inputs.files() + [{"uri": model_path, "kind": "model"}],
                                    {"product": f"{stem}.nc", "points": f"{stem}_points.csv",
                                     "quicklook": f"{stem}_quicklook.png", "metrics": metrics}, steps.timings, started)
        outputs.write_json(stage / "run.json", record)
    for var, s in summary.items():
        log.info("%s: %d members x %d steps on %s; mean %.2f ug m-3, mean ensemble spread (std) %.3f ug m-3",
                 var, members, times.size, hr_grid.describe(), s["mean"], s["mean_std"])
    return Result(published[f"{stem}.nc"], {"points": published[f"{stem}_points.csv"],
                                            "quicklook": published[f"{stem}_quicklook.png"],
                                            "run_record": published["run.json"]}, metrics)


def _local(uri: str, workdir: Path) -> Path:
    """A local path for a file given as a path or an s3:// URI."""
    return storage.fetch_input(uri, workdir) if storage.is_s3(uri) else Path(uri)


def _check_finite(values: np.ndarray, what: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ServiceError(f"{bad} missing values in the {what} over the AoI")


def run_predict(input_file: str, model_file: str, output: str | None = None, members: int | None = None,
                seed: int = 0) -> Result:
    """Downscale every time step of one low-resolution netCDF over the model's AoI."""
    from .generation import generate, load_model, write_ensemble_netcdf
    from .readers import GriddedFile

    started = dt.datetime.now(dt.timezone.utc)
    src_name = Path(input_file.rstrip("/")).name
    out_path = output or str(Path.cwd() / f"{Path(src_name).stem}_aqgan.nc")
    out_dir = out_path.rsplit("/", 1)[0] if storage.is_s3(out_path) else str(Path(out_path).resolve().parent)
    out_name = out_path.rsplit("/", 1)[-1] if storage.is_s3(out_path) else Path(out_path).name
    if not out_name.endswith(".nc"):
        raise ServiceError(f"--output must name a .nc file, not {out_name!r}")
    _refuse_overwriting(out_path, {"the input FILE": input_file, "the --model-file": model_file})
    with _staged(out_dir) as (work, stage, published):
        local = storage.fetch_input(input_file, work / "input")
        if local.is_dir():
            raise ServiceError(f"{input_file} is a folder: give one netCDF file")
        model = load_model(_local(model_file, work / "model"))
        members = members or _config_ensemble_size(model)
        f = GriddedFile.open(local, "cams_global")
        missing = [v for v in model.lr_variables if v not in f.variables]
        if missing:
            raise ServiceError(f"{src_name} lacks the model's low-resolution inputs {', '.join(missing)} ("
                               f"{Path(model_file).name} takes {', '.join(model.lr_variables)}; the file holds "
                               f"{', '.join(f.variables) or 'none'})")
        times = f.times if f.times.size else np.array([np.datetime64("1970-01-01T00:00:00")])
        lr_grid = model.lr_grid
        rg = Regridder(f.lat, f.lon, lr_grid, "auto", label=src_name)
        lr = np.empty((times.size, len(model.lr_variables), lr_grid.rows, lr_grid.cols))
        for ti in range(times.size):
            for vi, var in enumerate(model.lr_variables):
                lr[ti, vi] = rg(f.read(var, ti, rg.rows, rg.cols))
        _check_finite(lr, f"inputs of {src_name}")
        ens = generate(model, lr, model.static_fields, members, seed)
        hr_grid = lr_grid.refine(model.factor)
        summary = write_ensemble_netcdf(stage / out_name, times, hr_grid, model.hr_variables, ens,
                                        _config_quantiles(model),
                                        {"command": "aqgan-predict", "input_file": src_name,
                                         "model_file": Path(model_file).name})
    for var, s in summary.items():
        log.info("%s: %d members x %d steps on %s; mean %.2f ug m-3, mean spread (std) %.3f ug m-3; %.1f s", var,
                 members, times.size, hr_grid.describe(), s["mean"], s["mean_std"],
                 (dt.datetime.now(dt.timezone.utc) - started).total_seconds())
    return Result(published[out_name], {}, {"time_steps": int(times.size), "members": members, "variables": summary})


def _refuse_overwriting(output: str, inputs: dict[str, str]) -> None:
    """The output replaces its file when published: it must not be one of the inputs."""
    for what, uri in inputs.items():
        if _same_file(output, uri):
            raise ServiceError(f"--output {output} is {what}: writing there would replace it; name another file")


def _same_file(a: str, b: str) -> bool:
    if storage.is_s3(a) or storage.is_s3(b):
        return a.rstrip("/") == b.rstrip("/")
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)  # also through a link or another spelling of the path
    return pa.resolve() == pb.resolve()


def predict_to_folder(input_file: str, model_file: str, params, output_path: str) -> Result:
    """:func:`run_predict` with declared parameters (``PredictParams``), writing
    ``<input stem>_aqgan.nc`` into the folder ``output_path``."""
    stem = Path(input_file.rstrip("/").rsplit("/", 1)[-1]).stem
    return run_predict(input_file, model_file, f"{output_path.rstrip('/')}/{stem}_aqgan.nc", params.members or None,
                       params.seed)

def _model_config(model):
    from .config import load_config

    return load_config(text=model.config_yaml)


def _config_ensemble_size(model) -> int:
    return _model_config(model).outputs.ensemble_size


def _config_quantiles(model) -> tuple:
    return _model_config(model).outputs.quantiles


# ------------------------------------------------------------------------------------------------
# Quicklook


def _colormap(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A perceptually ordered dark-blue -> green -> yellow ramp (RGB uint8)."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)
    x = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1) * (len(stops) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(stops) - 2)
    f = (x - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def quicklook(path: Path, members: np.ndarray, scale: int = 4) -> Path:
    """PNG of one time step: ensemble mean | standard deviation | first members (north up)."""
    from PIL import Image

    mean, std = members.mean(0), members.std(0)
    lo, hi = np.percentile(members, [1, 99])
    panels = [_colormap(mean, lo, hi), _colormap(std, 0, max(float(np.percentile(std, 99)), 1e-6))]
    panels += [_colormap(m, lo, hi) for m in members[:2]]
    gap = np.full((mean.shape[0], 2, 3), 255, np.uint8)
    row = np.concatenate([x for p in panels for x in (p[::-1], gap)][:-1], axis=1)
    img = Image.fromarray(row, "RGB").resize((row.shape[1] * scale, row.shape[0] * scale), Image.NEAREST)
    with outputs.atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


# ------------------------------------------------------------------------------------------------
# Evaluation (bench and the pipeline's last step)


def read_ensemble(path: Path, variable: str) -> tuple[np.ndarray, np.ndarray, Grid]:
    """(times, members (T, N, H, W), grid) of a netCDF written by aqgan-generate/predict."""
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        if variable not in ds.variables:
            raise ServiceError(f"{path} has no variable {variable}")
        hours = np.asarray(ds["time"][:], np.float64)
        lat, lon = np.asarray(ds["lat"][:]), np.asarray(ds["lon"][:])
        ens = np.asarray(ds[variable][:], np.float64)
    res = float(np.round(lat[1] - lat[0], 10)) if lat.size > 1 else float(np.round(lon[1] - lon[0], 10))
    grid = Grid(float(np.round(lat[0] - res / 2, 8)), float(np.round(lon[0] - res / 2, 8)), res, lat.size, lon.size)
    times = np.datetime64("1970-01-01T00:00:00") + np.round(hours * 3600).astype("timedelta64[s]")
    return times, ens, grid


def run_evaluate(cfg: Config, dataset: str | None, ensemble_file: str, outdir: str, variable: str | None = None,
                 factor: int | None = None) -> Result:
    """Scores of a generated ensemble against the CAMS European truth of the dataset, with the
    bilinear and Lanczos baselines from the low-resolution input of the same variable."""
    from .evaluation import evaluate, report_html

    started = dt.datetime.now(dt.timezone.utc)
    name, ds = cfg.dataset(dataset)
    variable = variable or cfg.outputs.high_res[0]
    steps = Steps(log)
    with _staged(outdir) as (work, stage, published):
        local = storage.fetch_input(ensemble_file, work / "ensemble")
        if local.is_dir():
            local = next(iter(sorted(local.glob("*.nc"))), local)
        times, ens, hr_grid = read_ensemble(local, variable)
        factor = factor or cfg.factor
        lr_grid = Grid(hr_grid.south, hr_grid.west, round(hr_grid.res * factor, 10), hr_grid.rows // factor,
                       hr_grid.cols // factor)
        with steps.step("read truth and low-resolution input"):
            inputs = D.open_dataset(cfg, name, ds, (variable,), (variable,), work / "inputs")
            truth = np.stack([D.read_hr(inputs, (variable,), t, hr_grid, cfg.preproc.regrid)[0] for t in times])
            lr = np.stack([D.read_lr(inputs, (variable,), t, lr_grid, cfg.preproc.regrid)[0] for t in times])
        with steps.step("scores"):
            scores = evaluate(truth, ens, lr, lr_grid, hr_grid, seed=cfg.training.seed)
        scores["variable"] = variable
        outputs.write_json(stage / "scores.json", scores)
        (stage / "report.html").write_text(report_html(scores, f"aqgan {variable}: {name}, "
                                                               f"{D.fmt_time(times[0])}..{D.fmt_time(times[-1])}"))
        record = outputs.run_record("aqgan-evaluate", __version__, cfg.as_dict(), inputs.files() +
                                    [{"uri": ensemble_file}], {"product": "scores.json", "report": "report.html"},
                                    steps.timings, started)
        outputs.write_json(stage / "run.json", record)
    log.info("%s: CRPS %.3f, MAE bilinear %.3f, Lanczos %.3f (CRPS/MAE bilinear %.3f), RMSE mean %.3f, "
             "spread/skill %.3f, rank flatness %.3f", variable, scores["crps"], scores["bilinear_mae"],
             scores["lanczos_mae"], scores["crps_vs_bilinear_mae"], scores["ensemble_mean_rmse"],
             scores["spread_skill"], scores["rank_flatness"])
    return Result(published["scores.json"], {"report": published["report.html"], "run_record": published["run.json"]},
                  scores)
