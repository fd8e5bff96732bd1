"""timesen2crop: the TimeSen2Crop archive (seed section 3.2.2) to the arrays train_lstm reads.

``train.npy`` float32 [N, timesteps, 9 bands] (surface reflectance x 10000, 0 = no usable
observation) and ``y_train.npy`` int64 [N] (class ids of Table 8), optionally with tile-out
validation and test sets in ``val/`` and ``test/``, plus ``dataset.json`` (bands, time steps,
classes, counts per split and class) and ``run.json``. Outputs are written in a temporary folder
beside the destination and published at the end: a failed run leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components import __version__
from components.common import outputs, storage
from components.common.errors import InvalidParameter, ServiceError
from components.common.logs import Steps

from .archive import DATES_FILE, Archive, Tile
from .dataset import TileArrays, load_tiles, months_of_dates
from .legend import BANDS, CLASSES, CONDITIONS, class_name, season_months
from .params import TimeSen2CropParams

log = logging.getLogger(__name__)

SERVICE = "timesen2crop"
SPLIT_FILES = {"train": ("train.npy", "y_train.npy"), "val": ("val/val.npy", "val/y_val.npy"),
               "test": ("test/test.npy", "test/y_test.npy")}


@dataclass
class TimeSen2CropResult:
    """What a run wrote: the training arrays (the product) and their sidecars."""

    train: str
    y_train: str
    dataset: str
    run_record: str
    val: str | None = None
    test: str | None = None
    metrics: dict = field(default_factory=dict)


def run(input_dir: str, params: TimeSen2CropParams, output_dir: str) -> TimeSen2CropResult:
    with storage.output_folder(output_dir) as local_out:
        return _run(input_dir, params, output_dir, local_out)


def _select(archive: Archive, params: TimeSen2CropParams) -> dict[str, list[Tile]]:
    by_upper = {name.upper(): tile for name, tile in archive.tiles.items()}
    known = ", ".join(archive.tiles)
    for name in ("tiles", "val_tiles", "test_tiles"):
        for t in getattr(params, name):
            if t not in by_upper:
                raise InvalidParameter(name, t, f"tiles of the archive ({known})")
    held_out = set(params.val_tiles) | set(params.test_tiles)
    train = list(params.tiles) or [t for t in by_upper if t not in held_out]
    if not train:
        raise InvalidParameter("tiles", ",".join(params.tiles), "at least one tile left for training "
                               f"(archive: {known})")
    splits = {"train": [by_upper[t] for t in train], "val": [by_upper[t] for t in params.val_tiles],
              "test": [by_upper[t] for t in params.test_tiles]}
    for tile in (t for ts in splits.values() for t in ts):
        if not tile.n_samples:  # an unpacking cut short, most likely: not to be passed over silently
            raise ServiceError(f"tile {tile.name} in {archive.path.name} has {DATES_FILE} but no sample CSV in "
                               f"its crop-type folders (0-{max(CLASSES)}): restore its samples or remove the tile")
    return splits


def _check_dates(splits: dict[str, list[Tile]], params: TimeSen2CropParams) -> list[str]:
    """The time-step labels; refuses tiles whose dates cannot be stacked."""
    tiles = [t for ts in splits.values() for t in ts]
    if params.temporal == "acquisitions":
        ref = tiles[0]
        for t in tiles[1:]:
            if len(t.dates) != len(ref.dates) or not np.array_equal(t.dates, ref.dates):
                raise ServiceError(f"tiles {ref.name} and {t.name} have different acquisition dates "
                                   f"({len(ref.dates)} and {len(t.dates)} dates): samples of several tiles "
                                   "stack only with --temporal monthly")
        return [str(d) for d in ref.dates]
    months = season_months(params.season_start)
    for t in tiles:
        idx = months_of_dates(t.dates, params.season_start)
        if not (idx >= 0).any():
            raise ServiceError(f"tile {t.name}: no acquisition date in the agronomic year {months[0]} to "
                               f"{months[-1]} (dates {t.dates[0]} to {t.dates[-1]}): check --season_start")
        empty = [months[m] for m in range(len(months)) if not (idx == m).any()]
        if empty:
            log.warning("tile %s: no acquisition in %s; those steps are 0 (no observation)", t.name,
                        ", ".join(empty))
    return months


def _check_scale(x: np.ndarray, split: str) -> None:
    """TimeSen2Crop stores reflectance x 10000, like the composites; warn when values look like 0..1."""
    observed = x[x != 0]
    if observed.size and float(np.percentile(observed[:1_000_000], 99)) < 2.0:
        log.warning("%s values look like reflectance in 0..1, not reflectance x 10000 as in TimeSen2Crop and the "
                    "monthly composites: a model trained on them will not apply to the composites", split)


def _run(input_dir: str, params: TimeSen2CropParams, output_dir: str, local_out: Path | None) -> TimeSen2CropResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    with outputs.work_folder(local_out, ".ts2c-") as work:
        with steps.step("fetch input"):
            local_input = storage.fetch_input(input_dir, work / "input")
        with steps.step("index archive"):
            archive = Archive(local_input)
        try:
            log.info("archive %s: %d tiles, %d sample files", local_input.name, len(archive.tiles),
                     sum(t.n_samples for t in archive.tiles.values()))
            splits = _select(archive, params)
            timesteps = _check_dates(splits, params)
            classes = {int(c) for c in params.classes} or None
            usable = tuple(int(c) for c in params.usable_conditions)
            arrays: dict[str, list[TileArrays]] = {}
            for split, tiles in splits.items():
                if not tiles:
                    continue
                with steps.step(f"read {split} tiles {','.join(t.name for t in tiles)}"):
                    arrays[split] = load_tiles(archive, tiles, classes, params.temporal, params.season_start,
                                               usable, params.non_clear, params.bad_files, params.workers)
        finally:
            archive.close()
        stage = work / "stage"
        stage.mkdir()
        summary = {}
        for split, parts in arrays.items():
            x = np.concatenate([p.x for p in parts])
            y = np.concatenate([p.y for p in parts])
            tiles = ",".join(p.tile for p in parts)
            if len(y) == 0:
                raise ServiceError(f"{split} tiles {tiles} hold no sample with a usable observation "
                                   f"(classes {','.join(params.classes) or 'all'}, usable conditions "
                                   f"{','.join(params.usable_conditions)}, non_clear {params.non_clear})")
            _check_scale(x, split)
            xf, yf = SPLIT_FILES[split]
            (stage / xf).parent.mkdir(parents=True, exist_ok=True)
            np.save(stage / xf, np.ascontiguousarray(x, np.float32))
            np.save(stage / yf, y.astype(np.int64))
            ids, counts = np.unique(y, return_counts=True)
            summary[split] = {"file": xf, "labels": yf, "shape": list(x.shape),
                              "tiles": {p.tile: p.stats for p in parts},
                              "samples": int(len(y)),
                              "per_class": {str(int(i)): int(n) for i, n in zip(ids, counts)}}
            log.info("%s: %d samples x %d steps x %d bands from %s", split, len(y), x.shape[1], x.shape[2], tiles)
        dataset = {
            "format": "timesen2crop-arrays", "bands": list(BANDS), "temporal": params.temporal,
            "timesteps": timesteps, "season_start": params.season_start if params.temporal == "monthly" else None,
            "values": "surface reflectance x 10000; 0 = no usable observation",
            "conditions": {str(k): v for k, v in CONDITIONS.items()},
            "usable_conditions": [int(c) for c in params.usable_conditions], "non_clear": params.non_clear,
            "classes": {str(k): class_name(k) for k in CLASSES},
            "splits": summary,
        }
        outputs.write_json(stage / "dataset.json", dataset)
        metrics = {f"{s}_samples": v["samples"] for s, v in summary.items()}
        skipped = sum(len(st["skipped_files"]) for v in summary.values() for st in v["tiles"].values())
        metrics["skipped_files"] = skipped
        record = outputs.run_record(SERVICE, __version__, params.as_dict(),
                                    [{"uri": input_dir, "tiles": {s: [t.name for t in ts] for s, ts in splits.items()}}],
                                    {"dataset": "dataset.json", **{s: v["file"] for s, v in summary.items()},
                                     "metrics": metrics}, steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        with steps.step("publish"):
            published = storage.publish(stage, output_dir, move=True)
    by_rel = {}
    for p in published:
        for rel in ["dataset.json", "run.json", *[f for pair in SPLIT_FILES.values() for f in pair]]:
            if p.endswith("/" + rel) or p == rel:
                by_rel[rel] = p
    log.info("product %s: %s, %.1f s", by_rel["train.npy"],
             ", ".join(f"{k} {v}" for k, v in metrics.items()), steps.elapsed)
    return TimeSen2CropResult(by_rel["train.npy"], by_rel["y_train.npy"], by_rel["dataset.json"], by_rel["run.json"],
                              by_rel.get("val/val.npy"), by_rel.get("test/test.npy"), metrics)
