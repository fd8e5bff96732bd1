"""The YAML configuration of the aqgan commands, declared once as a schema (seed D5.2 §5.2.1.6,
Table 15) with every parameter's default and one-line doc.

The schema is a tree of frozen dataclasses; :func:`load_config` reads a YAML file, rejects unknown
keys and bad values with one line naming the key (``model.input_frame``), the value and what is
allowed, and returns a :class:`Config`. ``default_config.yaml`` beside this module is the same
defaults written out (a test keeps the two identical); :func:`describe` renders the schema for
``--help``. Relative data paths are resolved against the folder of the configuration file.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, get_args, get_origin

import yaml

from components.common.errors import InvalidParameter, ServiceError
from components.common.params import param

DEFAULT_CONFIG = Path(__file__).with_name("default_config.yaml")

# Variables the readers know: the short names of the CAMS global (EAC4) and ERA5 products.
LOW_RES_VARIABLES = ("pm2p5", "pm10", "u10", "v10", "t2m", "sp", "lsm", "z", "d2m", "blh", "tcc", "no2", "go3",
                     "so2", "co", "aod550")
# Variables of the CAMS European air quality product (name in its files: <name>_conc).
HIGH_RES_OUTPUTS = ("pm2p5", "pm10", "no2", "o3", "so2", "co", "nh3", "no", "dust", "nmvoc", "pans")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


# ------------------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True)
class ModelConfig:
    type: Literal["srgan"] = param("srgan", "Type of super-resolution model (only srgan, after Ledig et al. 2016)")
    input_frame: tuple[int, int] = param((8, 8), "Low-resolution frame size of a tile: rows, cols", minimum=1)
    output_frame: tuple[int, int] = param((64, 64), "High-resolution frame size: rows, cols (a power-of-two "
                                          "multiple of input_frame, the same on both axes)", minimum=2)
    generator_filters: int = param(64, "Number of filters in the generator", minimum=1, maximum=1024)
    discriminator_filters: int = param(32, "Number of filters in the discriminator (critic)", minimum=1,
                                       maximum=1024)
    residual_blocks: int = param(6, "Residual blocks of the generator at low resolution", minimum=0, maximum=64)
    noise_channels: int = param(8, "Channels of the generator's noise input: each draw is one ensemble member",
                                minimum=1, maximum=256)


@dataclass(frozen=True)
class AoIConfig:
    lat_min: float = param(44.0, "Area of interest: southern latitude (degrees north)", minimum=-90, maximum=90)
    lat_max: float = param(50.4, "Area of interest: northern latitude (degrees north)", minimum=-90, maximum=90)
    lon_min: float = param(5.0, "Area of interest: western longitude (degrees east, -180..180)", minimum=-180,
                           maximum=180)
    lon_max: float = param(11.4, "Area of interest: eastern longitude (degrees east, -180..180)", minimum=-180,
                           maximum=180)


@dataclass(frozen=True)
class GridConfig:
    hr_resolution: float = param(0.1, "High-resolution grid spacing in degrees (the CAMS European grid); the "
                                 "low-resolution spacing is this times output_frame/input_frame",
                                 minimum=0, exclusive_minimum=True, maximum=5)


@dataclass(frozen=True)
class InputsConfig:
    low_res: tuple[str, ...] = param(("pm2p5", "u10", "v10", "t2m", "lsm", "sp", "z", "pm10"),
                                     "Low-resolution inputs (CAMS global / ERA5 short names)",
                                     choices=LOW_RES_VARIABLES)
    high_res_static: tuple[str, ...] = param(("urban_frac", "orog_scal"),
                                             "High-resolution static inputs (urban fraction, min-max scaled "
                                             "orography); each needs a source in every dataset")


@dataclass(frozen=True)
class Point:
    name: str = param("", "Name of the location (CSV column 'point')")
    lat: float = param(0.0, "Latitude (degrees north)", minimum=-90, maximum=90)
    lon: float = param(0.0, "Longitude (degrees east)", minimum=-180, maximum=180)


DEFAULT_POINTS = (Point("Milano", 45.464, 9.19), Point("Torino", 45.07, 7.686), Point("Zurich", 47.377, 8.541))


@dataclass(frozen=True)
class OutputsConfig:
    high_res: tuple[str, ...] = param(("pm2p5",), "High-resolution output(s) (CAMS European variables)",
                                      choices=HIGH_RES_OUTPUTS)
    ensemble_size: int = param(10, "Output ensemble size: members generated per time step", minimum=1,
                               maximum=1000)
    quantiles: tuple[float, ...] = param((0.05, 0.25, 0.5, 0.75, 0.95), "Ensemble quantiles written beside "
                                         "the mean and standard deviation", minimum=0, maximum=1)
    points: tuple[Point, ...] = param(DEFAULT_POINTS, "Point locations of interest written to the CSV "
                                      "(name, lat, lon); each inside the AoI")


@dataclass(frozen=True)
class TrainingConfig:
    learning_rate: float = param(1e-5, "Learning rate (Adam) of generator and critic", minimum=0,
                                 exclusive_minimum=True, maximum=1)
    batch_size: int = param(128, "Batch size", minimum=1, maximum=65536)
    adversarial_loss: Literal["wasserstein"] = param("wasserstein", "Type of adversarial loss: Wasserstein "
                                                     "(Arjovsky et al. 2017) with gradient penalty")
    gradient_penalty: float = param(10.0, "Weight of the critic's gradient penalty (Gulrajani et al. 2017)",
                                    minimum=0, exclusive_minimum=True)
    content_loss: Literal["crps", "mse", "none"] = param(
        "crps", "Content term added to the generator loss: crps (fair CRPS of content_members draws), mse "
        "(of their mean), none")
    content_weight: float = param(100.0, "Weight of the content term (against the critic's score; 100 kept the "
                                  "ensemble calibrated in bench/aq_eval.py, 10 made it under-dispersive)",
                                  minimum=0)
    content_members: int = param(4, "Draws per sample for the content term", minimum=2, maximum=64)
    critic_steps: int = param(5, "Critic updates per generator update", minimum=1, maximum=100)
    epochs: int = param(50, "Training epochs (passes over the training tiles)", minimum=1)
    beta1: float = param(0.5, "Adam beta1", minimum=0, maximum=1)
    beta2: float = param(0.9, "Adam beta2", minimum=0, maximum=1)
    checkpoint_every: int = param(1, "Write a checkpoint every N epochs", minimum=1)
    keep_checkpoints: int = param(3, "Checkpoints kept (the newest)", minimum=1)
    seed: int = param(0, "Random seed (weights, batches, noise)", minimum=0)
    device: Literal["auto", "cpu", "cuda"] = param("auto", "auto: the GPU when present, else the CPU")


@dataclass(frozen=True)
class PreprocConfig:
    tile_stride: int = param(0, "Low-resolution cells between tile origins (0: input_frame, no overlap)",
                             minimum=0)
    regrid: Literal["auto", "conservative", "bilinear"] = param(
        "auto", "Regridding: auto = conservative from finer sources, bilinear from coarser ones")


@dataclass(frozen=True)
class StaticSource:
    path: str = param("", "netCDF or GeoTIFF file of the static field")
    variable: Optional[str] = param(None, "Variable in a netCDF file (default: the only 2-D data variable)")
    transform: Literal["auto", "none", "minmax"] = param(
        "auto", "minmax scales to 0..1 over the AoI (auto: minmax for orog_* names, else none)")


@dataclass(frozen=True)
class DatasetSources:
    cams_global: tuple[str, ...] = param((), "CAMS global reanalysis (EAC4) netCDF files: paths or glob patterns")
    cams_europe: tuple[str, ...] = param((), "CAMS European air quality analysis/forecast netCDF files (0.1°)")
    era5: tuple[str, ...] = param((), "ERA5 netCDF files; weather variables come from here first when given")
    static: dict[str, StaticSource] = param(None, "High-resolution static fields: name -> file (or "
                                            "{path, variable, transform})")

    def __post_init__(self):
        if self.static is None:
            object.__setattr__(self, "static", {})


@dataclass(frozen=True)
class PathsConfig:
    tiles: str = param("tiles", "Folder of the training tiles written by aqgan-preproc")
    models: str = param("models", "Folder of checkpoints and the trained model (model.pt)")
    output: str = param("output", "Folder of the generated netCDF and CSV")
    datasets: dict[str, DatasetSources] = param(None, "Input data per dataset name (--dataset)")

    def __post_init__(self):
        if self.datasets is None:
            object.__setattr__(self, "datasets", _default_datasets())


def _default_datasets() -> dict[str, DatasetSources]:
    return {"cams-europe": DatasetSources(
        cams_global=("data/cams-global/*.nc",), cams_europe=("data/cams-europe/*.nc",), era5=("data/era5/*.nc",),
        static={"urban_frac": StaticSource("data/static/urban_frac.nc"),
                "orog_scal": StaticSource("data/static/orography.tif")})}


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"doc": "Model architecture"})
    aoi: AoIConfig = field(default_factory=AoIConfig, metadata={"doc": "Area of interest: lat-lon bounding box"})
    grid: GridConfig = field(default_factory=GridConfig, metadata={"doc": "Grids"})
    inputs: InputsConfig = field(default_factory=InputsConfig, metadata={"doc": "Model inputs"})
    outputs: OutputsConfig = field(default_factory=OutputsConfig, metadata={"doc": "Model outputs"})
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"doc": "Training"})
    preproc: PreprocConfig = field(default_factory=PreprocConfig, metadata={"doc": "Pre-processing"})
    paths: PathsConfig = field(default_factory=PathsConfig, metadata={"doc": "Input and output data paths"})
    base_dir: str = field(default=".", metadata={"internal": True})

    # ---- derived values

    @property
    def factor(self) -> int:
        return self.model.output_frame[0] // self.model.input_frame[0]

    @property
    def lr_resolution(self) -> float:
        return self.grid.hr_resolution * self.factor

    def resolve(self, path: str) -> str:
        """A data path relative to the configuration file's folder (s3:// URIs unchanged)."""
        if path.lower().startswith("s3://") or Path(path).is_absolute():
            return path
        return str(Path(self.base_dir) / path)

    def dataset(self, name: str | None) -> tuple[str, DatasetSources]:
        names = list(self.paths.datasets)
        if name is None or name == "":
            if len(names) == 1:
                return names[0], self.paths.datasets[names[0]]
            raise InvalidParameter("dataset", name, "a dataset of the configuration: " + ", ".join(names))
        if name not in self.paths.datasets:
            raise InvalidParameter("dataset", name, "a dataset of the configuration: " + ", ".join(names))
        return name, self.paths.datasets[name]

    def as_dict(self) -> dict:
        """Plain data (YAML-able), without the internal base_dir."""
        out = _to_plain(self)
        out.pop("base_dir", None)
        return out


# ------------------------------------------------------------------------------------------------
# Loading and validation


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                text: str | None = None) -> Config:
    """Read and validate a configuration: a YAML file (``path``), or YAML ``text``, or the defaults.

    ``overrides`` are ``key.path=value`` strings (YAML values) applied on top, as ``--set`` does.
    """
    base_dir = "."
    data: Any = {}
    if text is not None:
        data = _parse_yaml(text, "configuration")
    elif path is not None:
        p = Path(path)
        if not p.is_file():
            raise ServiceError(f"configuration file not found: {path}")
        try:
            raw = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ServiceError(f"cannot read configuration file {path}: {exc}") from None
        data = _parse_yaml(raw, str(path))
        base_dir = str(p.resolve().parent)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ServiceError(f"configuration must be a YAML mapping of sections, not {type(data).__name__}")
    for item in overrides or []:
        _apply_override(data, item)
    cfg = _build(Config, data, "")
    cfg = dataclasses.replace(cfg, base_dir=base_dir)
    _check(cfg)
    return cfg


def _parse_yaml(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ServiceError(f"{where} is not valid YAML{at}: {problem}") from None


def _apply_override(data: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ServiceError(f"--set needs KEY=VALUE (e.g. training.epochs=5), not {item!r}")
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ServiceError(f"--set {key}: '{part}' is not a section")
        node = nxt
    node[parts[-1]] = _parse_yaml(value, f"--set {key}") if value.strip() else ""


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _build(cls, data, path: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidParameter(path or "configuration", data, f"a mapping with the keys {_keys(cls)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            where = f"in '{path}'" if path else "at the top level"
            raise ServiceError(f"unknown key '{_join(path, str(key))}' in the configuration: allowed {where}: "
                               f"{_keys(cls)}")
        kwargs[key] = _coerce(hints[key], value, _join(path, key), fields[key])
    return cls(**kwargs)


def _keys(cls) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal"))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _coerce(tp, value, path: str, f: dataclasses.Field | None):
    meta = f.metadata if f is not None else {}
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if tp is StaticSource and isinstance(value, str):
            value = {"path": value}
        if tp is Point and isinstance(value, (list, tuple)) and len(value) == 3:
            value = dict(zip(("name", "lat", "lon"), value))
        return _build(tp, value, path)
    if origin is Literal:
        allowed = get_args(tp)
        for a in allowed:
            if str(value).strip().lower() == str(a).lower():
                return a
        raise InvalidParameter(path, value, "one of " + ", ".join(map(str, allowed)))
    if origin is typing.Union:  # Optional[str]
        if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
            return None
        return _coerce(str, value, path, f)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidParameter(path, value, "a mapping of names")
        _, vt = get_args(tp)
        out = {}
        for k, v in value.items():
            name = str(k)
            if not (DATASET_RE if vt is DatasetSources else NAME_RE).match(name):
                raise InvalidParameter(path, name, "names of letters, digits, '_' (and '-', '.' for datasets)")
            out[name] = _coerce(vt, v, f"{path}.{name}", None)
        return out
    if origin is tuple:
        args = get_args(tp)
        if path.endswith("_frame"):
            return _frame(value, path, meta)
        item_t = args[0]
        if value is None:
            items = []
        elif isinstance(value, (list, tuple)):
            items = list(value)
        elif isinstance(value, str) and item_t is not Point:
            items = [s.strip() for s in value.split(",") if s.strip()] if item_t is not str or "," in value \
                else [value]
        else:
            items = [value]
        out = tuple(_coerce(item_t, v, f"{path}[{i}]", f) for i, v in enumerate(items))
        choices = meta.get("choices")
        if choices:
            bad = [v for v in out if v not in choices]
            if bad:
                raise InvalidParameter(path, bad[0], "names among " + ", ".join(choices))
        if item_t is str and len(set(out)) != len(out):
            raise InvalidParameter(path, list(out), "each name at most once")
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise InvalidParameter(path, value, "true or false")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidParameter(path, value, "an integer" + _bounds_text(meta))
        try:
            number = float(value)
        except ValueError:
            raise InvalidParameter(path, value, "an integer" + _bounds_text(meta)) from None
        if not number.is_integer():
            raise InvalidParameter(path, value, "an integer" + _bounds_text(meta))
        return _bounded(int(number), path, meta, "an integer")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidParameter(path, value, "a number" + _bounds_text(meta))
        try:
            number = float(value)
        except ValueError:
            raise InvalidParameter(path, value, "a number" + _bounds_text(meta)) from None
        if not math.isfinite(number):
            raise InvalidParameter(path, value, "a finite number" + _bounds_text(meta))
        return _bounded(number, path, meta, "a number")
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise InvalidParameter(path, value, "a string")
        return str(value)
    raise TypeError(f"unsupported schema type {tp!r} at {path}")


def _frame(value, path: str, meta) -> tuple[int, int]:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[xX×]\s*\d+\s*", value):
        value = [int(v) for v in re.split(r"[xX×]", value)]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2 or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise InvalidParameter(path, value, "two integers [rows, cols] (or 'RxC')")
    for v in value:
        _bounded(v, path, meta, "integers")
    return int(value[0]), int(value[1])


def _bounds_text(meta) -> str:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    parts = []
    if lo is not None:
        parts.append(f"> {lo}" if meta.get("exclusive_minimum") else f">= {lo}")
    if hi is not None:
        parts.append(f"<= {hi}")
    return (" " + " and ".join(parts)) if parts else ""


def _bounded(value, path: str, meta, kind: str):
    lo, hi = meta.get("minimum"), meta.get("maximum")
    strict = meta.get("exclusive_minimum")
    if (lo is not None and (value <= lo if strict else value < lo)) or (hi is not None and value > hi):
        raise InvalidParameter(path, value, kind + _bounds_text(meta))
    return value


def _check(cfg: Config) -> None:
    """Rules that involve more than one key."""
    (ri, ci), (ro, co) = cfg.model.input_frame, cfg.model.output_frame
    if ro % ri or co % ci or ro // ri != co // ci:
        raise InvalidParameter("model.output_frame", [ro, co], f"the same integer multiple of input_frame "
                                                              f"[{ri}, {ci}] on both axes")
    factor = ro // ri
    if factor < 2 or factor & (factor - 1):
        raise InvalidParameter("model.output_frame", [ro, co], f"a power-of-two multiple (2, 4, 8, ...) of "
                                                              f"input_frame [{ri}, {ci}]; the factor is {factor}")
    a = cfg.aoi
    if a.lat_min >= a.lat_max:
        raise InvalidParameter("aoi.lat_max", a.lat_max, f"a latitude > aoi.lat_min ({a.lat_min})")
    if a.lon_min >= a.lon_max:
        raise InvalidParameter("aoi.lon_max", a.lon_max, f"a longitude > aoi.lon_min ({a.lon_min}); AoIs "
                                                         "across the antimeridian are not supported")
    q = cfg.outputs.quantiles
    if any(not 0 < v < 1 for v in q) or list(q) != sorted(set(q)):
        raise InvalidParameter("outputs.quantiles", list(q), "increasing numbers between 0 and 1 (exclusive)")
    names = [p.name for p in cfg.outputs.points]
    for i, p in enumerate(cfg.outputs.points):
        if not p.name.strip():
            raise InvalidParameter(f"outputs.points[{i}].name", p.name, "a non-empty name")
        if not (a.lat_min <= p.lat <= a.lat_max and a.lon_min <= p.lon <= a.lon_max):
            raise InvalidParameter(f"outputs.points[{i}]", f"{p.name} ({p.lat}, {p.lon})",
                                   f"a location inside the AoI lat {a.lat_min}..{a.lat_max}, "
                                   f"lon {a.lon_min}..{a.lon_max}")
    if len(set(names)) != len(names):
        raise InvalidParameter("outputs.points", names, "distinct names")
    if not cfg.inputs.low_res:
        raise InvalidParameter("inputs.low_res", [], "at least one low-resolution input")
    if not cfg.outputs.high_res:
        raise InvalidParameter("outputs.high_res", [], "at least one output")
    for name in cfg.inputs.high_res_static:
        if not NAME_RE.match(name):
            raise InvalidParameter("inputs.high_res_static", name, "names of letters, digits and '_'")
    if not cfg.paths.datasets:
        raise InvalidParameter("paths.datasets", {}, "at least one dataset")
    for dname, ds in cfg.paths.datasets.items():
        missing = [s for s in cfg.inputs.high_res_static if s not in ds.static]
        if missing:
            raise InvalidParameter(f"paths.datasets.{dname}.static", sorted(ds.static),
                                   f"a source for every high_res_static input (missing: {', '.join(missing)})")
        if not ds.cams_global and not ds.era5:
            raise InvalidParameter(f"paths.datasets.{dname}", "no low-resolution source",
                                   "cams_global and/or era5 files")
        for sname, src in ds.static.items():
            if not src.path:
                raise InvalidParameter(f"paths.datasets.{dname}.static.{sname}.path", src.path, "a file path")


# ------------------------------------------------------------------------------------------------
# Rendering


def _to_plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.as_dict(), sort_keys=False, allow_unicode=True)


def describe() -> str:
    """Every configuration key with its default and doc, for ``--help``."""
    lines = ["configuration keys (YAML; override any with --set KEY=VALUE):"]
    defaults = Config()
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal"):
            continue
        lines.append(f"  {section.name}: {section.metadata.get('doc', '')}")
        sub = getattr(defaults, section.name)
        for f in dataclasses.fields(sub):
            value = getattr(sub, f.name)
            if f.name == "datasets":
                shown = "{NAME: {cams_global, cams_europe, era5, static}}"
            elif f.name == "points":
                shown = ", ".join(f"{p.name} ({p.lat}, {p.lon})" for p in value)
            elif isinstance(value, tuple):
                shown = "x".join(map(str, value)) if f.name.endswith("_frame") else ", ".join(map(str, value))
            else:
                shown = str(value)
            choices = f.metadata.get("choices")
            hints = _hints(type(sub))[f.name]
            allowed = get_args(hints) if get_origin(hints) is Literal else None
            extra = f" [{'|'.join(map(str, allowed))}]" if allowed else ""
            extra += f" [from: {', '.join(choices)}]" if choices else ""
            lines.append(f"    {section.name}.{f.name} = {shown}: {f.metadata.get('doc', '')}{extra}")
    lines.append("  paths.datasets.NAME keys: " + "; ".join(
        f"{f.name}: {f.metadata.get('doc', '')}" for f in dataclasses.fields(DatasetSources)))
    return "\n".join(lines)
