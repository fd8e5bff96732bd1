"""The inputs of one dataset of the configuration, aligned on the AoI grids.

Low-resolution variables come from ERA5 (weather: wind, temperature, pressure, land-sea mask,
geopotential) when ERA5 files are given and hold them, else from the CAMS global reanalysis;
concentrations come from CAMS global. High-resolution targets come from the CAMS European
product. Time steps are those that every needed source has (the time-invariant ``lsm`` and ``z``
are taken from their source's first step). Static fields are read once on the high-resolution grid.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.common import storage
from components.common.errors import InvalidParameter, ServiceError

from .config import Config, DatasetSources
from .grid import Grid, aoi_grids
from .normalise import minmax
from .readers import INVARIANT, Source, expand_patterns, read_static

log = logging.getLogger(__name__)

WEATHER = {"u10", "v10", "t2m", "d2m", "sp", "lsm", "z", "blh", "tcc"}
DATE_FORMAT = "%Y%m%d%H"


def parse_date(text: str, name: str) -> np.datetime64:
    """A YYYYMMDDHH date (the seed's format) as datetime64[s]."""
    value = str(text).strip()
    try:
        if len(value) != 10 or not value.isdigit():
            raise ValueError
        return np.datetime64(dt.datetime.strptime(value, DATE_FORMAT), "s")
    except ValueError:
        raise InvalidParameter(name, text, "a date and hour YYYYMMDDHH, e.g. 2021010100") from None


def check_range(start: np.datetime64, end: np.datetime64) -> None:
    if end < start:
        raise InvalidParameter("end-date", _fmt(end), f"a date not before --start-date {_fmt(start)}")


def _fmt(t: np.datetime64) -> str:
    return t.astype("datetime64[s]").astype(dt.datetime).strftime(DATE_FORMAT)


def fmt_time(t: np.datetime64) -> str:
    return _fmt(t)


def grids(cfg: Config, factor: int | None = None, hr_res: float | None = None) -> tuple[Grid, Grid]:
    a = cfg.aoi
    return aoi_grids(a.lat_min, a.lat_max, a.lon_min, a.lon_max, hr_res or cfg.grid.hr_resolution,
                     factor or cfg.factor)


@dataclass
class DatasetInputs:
    name: str
    sources: dict = field(default_factory=dict)       # kind -> Source
    lr_source: dict = field(default_factory=dict)     # variable -> Source

    def files(self) -> list[dict]:
        return [{"kind": s.kind, "path": str(f.path)} for s in self.sources.values() for f in s.files]


def open_dataset(cfg: Config, name: str, ds: DatasetSources, lr_vars: tuple[str, ...], hr_vars: tuple[str, ...],
                 workdir: Path) -> DatasetInputs:
    """Open the files of a dataset and pick the source of every variable; fail naming what is
    missing where."""
    out = DatasetInputs(name)
    for kind in ("era5", "cams_global", "cams_europe"):
        patterns = getattr(ds, kind)
        if kind == "cams_europe" and not hr_vars:
            continue
        if patterns:
            out.sources[kind] = Source(kind, expand_patterns(patterns, cfg.resolve, workdir, kind))
    for var in lr_vars:
        order = ("era5", "cams_global") if var in WEATHER else ("cams_global", "era5")
        src = next((out.sources[k] for k in order if k in out.sources and out.sources[k].has(var)), None)
        if src is None:
            have = "; ".join(f"{k}: {', '.join(s.names()) or 'none'}" for k, s in out.sources.items()
                             if k != "cams_europe")
            raise ServiceError(f"dataset {name}: no low-resolution file holds {var} ({have})")
        out.lr_source[var] = src
    if hr_vars:
        europe = out.sources.get("cams_europe")
        if europe is None:
            raise ServiceError(f"dataset {name}: no cams_europe files configured (needed for the high-resolution "
                               f"targets {', '.join(hr_vars)})")
        missing = [v for v in hr_vars if not europe.has(v)]
        if missing:
            raise ServiceError(f"dataset {name}: the cams_europe files hold no {', '.join(missing)} (they hold "
                               f"{', '.join(europe.names()) or 'nothing'}; expected variables <name>_conc)")
    return out


def common_times(inputs: DatasetInputs, lr_vars, hr_vars, start: np.datetime64, end: np.datetime64) -> np.ndarray:
    """Time steps in [start, end] that every needed (time-dependent) variable has."""
    sets = []
    coverage = []
    for var in lr_vars:
        if var in INVARIANT:
            continue
        ts = inputs.lr_source[var].times(var)
        coverage.append(f"{var} ({inputs.lr_source[var].kind}) {_span(ts)}")
        sets.append(ts)
    for var in hr_vars:
        ts = inputs.sources["cams_europe"].times(var)
        coverage.append(f"{var} (cams_europe) {_span(ts)}")
        sets.append(ts)
    if not sets:
        raise ServiceError("no time-dependent input: add a low-resolution variable other than lsm and z")
    times = sets[0]
    for ts in sets[1:]:
        times = np.intersect1d(times, ts)
    times = times[(times >= start) & (times <= end)]
    if times.size == 0:
        raise ServiceError(f"dataset {inputs.name}: no time step between {_fmt(start)} and {_fmt(end)} common to "
                           f"all inputs: {'; '.join(coverage)}")
    if hr_vars:
        _warn_short_record(inputs.name, times)
    return times


# Below this span of training targets the model has seen too few weather situations: on the real
# CAMS European forecast (2 days of hourly steps, README "Real data") the trained ensemble's mean
# was no better than Lanczos interpolation. A rule of thumb, not a measured limit.
MIN_TRAINING_DAYS = 30


def _warn_short_record(name: str, times: np.ndarray) -> None:
    days = float((times[-1] - times[0]) / np.timedelta64(1, "D")) if times.size > 1 else 0.0
    if days < MIN_TRAINING_DAYS:
        log.warning("dataset %s: the training targets span %.1f days (%d time steps), less than %d: fine-scale "
                    "structure that moves with the weather is not learnt from so few situations; compare the "
                    "trained model with interpolation on held-out days before using it", name, days, times.size,
                    MIN_TRAINING_DAYS)


def _span(ts: np.ndarray) -> str:
    if ts.size == 0:
        return "no times"
    return f"{_fmt(ts[0])}..{_fmt(ts[-1])} ({ts.size} steps)"


def read_lr(inputs: DatasetInputs, lr_vars, when: np.datetime64, grid: Grid, method: str) -> np.ndarray:
    out = np.empty((len(lr_vars), grid.rows, grid.cols), np.float64)
    for i, var in enumerate(lr_vars):
        out[i] = inputs.lr_source[var].read(var, None if var in INVARIANT else when, grid, method)
    return out


def read_hr(inputs: DatasetInputs, hr_vars, when: np.datetime64, grid: Grid, method: str) -> np.ndarray:
    europe = inputs.sources["cams_europe"]
    return np.stack([europe.read(var, when, grid, method) for var in hr_vars])


def static_transform(name: str, requested: str) -> str:
    if requested == "auto":
        return "minmax" if name.startswith("orog") else "none"
    return requested


def read_statics(cfg: Config, ds: DatasetSources, names, grid: Grid, method: str, workdir: Path,
                 params: dict | None = None) -> tuple[np.ndarray, dict]:
    """Static fields on ``grid`` (physical values after their transform) and the transform
    parameters ({name: {"transform", "min", "max"}}); given ``params`` (from a model) are reused."""
    fields, used = [], {}
    for name in names:
        src = ds.static[name]
        if storage.is_s3(src.path):
            path = storage.fetch_input(src.path, Path(workdir) / f"static-{name}")
        else:
            path = Path(cfg.resolve(src.path))
        values = read_static(path, src.variable, grid, name, method)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise ServiceError(f"static input {name} ({src.path}) does not cover the AoI grid: {bad} of "
                               f"{values.size} cells without data")
        transform = (params or {}).get(name, {}).get("transform") or static_transform(name, src.transform)
        if transform == "minmax":
            p = (params or {}).get(name, {})
            values, lo, hi = minmax(values, p.get("min"), p.get("max"))
            used[name] = {"transform": "minmax", "min": lo, "max": hi}
        else:
            used[name] = {"transform": "none"}
        fields.append(values)
    return (np.stack(fields) if fields else np.zeros((0, grid.rows, grid.cols))), used
