"""The YAML configuration of the aqgan commands, declared once as a schema (seed D5.2 §5.2.1.6,
Table 15) with every parameter's default and one-line doc.

The schema is a tree of frozen pydantic models; :func:`load_config` reads a YAML file and returns
a :class:`Config`. An unknown key or a bad value is one line naming the key (``model.input_frame``),
the value and what is allowed (a :class:`ServiceError`, exit status 2), from pydantic's first
error. ``default_config.yaml`` beside this module is the same defaults written out (a test keeps
the two identical); :func:`describe` renders the schema for ``--help``. Relative data paths are
resolved against the folder of the configuration file.
"""

# no `from __future__ import annotations`: pydantic reads the annotations below as objects

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError,
                      model_validator)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from components.common.errors import InvalidParameter, ServiceError

DEFAULT_CONFIG = Path(__file__).with_name("default_config.yaml")

# Variables the readers know: the short names of the CAMS global (EAC4) and ERA5 products.
LOW_RES_VARIABLES = ("pm2p5", "pm10", "u10", "v10", "t2m", "sp", "lsm", "z", "d2m", "blh", "tcc", "no2", "go3",
                     "so2", "co", "aod550")
# Variables of the CAMS European air quality product (name in its files: <name>_conc).
HIGH_RES_OUTPUTS = ("pm2p5", "pm10", "no2", "o3", "so2", "co", "nh3", "no", "dust", "nmvoc", "pans")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
FRAME_ALLOWED = "two integers [rows, cols] (or 'RxC')"
MAX_ENSEMBLE = 1000  # members per time step: aqgan-generate/-predict hold them all in memory
MAX_SEED = 2 ** 63 - 1  # the largest seed torch and NumPy take as a signed 64-bit integer


# ------------------------------------------------------------------------------------------------
# What YAML may spell differently from the schema's types, applied before pydantic's checks


def _invalid(allowed: str | None = None, value: Any = None) -> PydanticCustomError:
    """A failure for :func:`_one_line`: ``allowed`` replaces what the field's type says, ``value``
    the value pydantic saw (e.g. the bad item instead of the whole list)."""
    ctx: dict = {} if allowed is None else {"allowed": allowed}
    if value is not None:
        ctx["value"] = value
    return PydanticCustomError("config_value", "invalid value", ctx)


def _no_bool(value):
    if isinstance(value, bool):  # YAML's true/yes: pydantic would take it for the number 1
        raise _invalid()
    return value


def _integer(value):
    value = _no_bool(value)
    if isinstance(value, str):  # YAML reads 1e2 (no dot) as text
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value


def _case_insensitive(value):
    return value.strip().lower() if isinstance(value, str) else value


def _as_list(value):
    """A list as given, a comma-separated string, or a single value."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [value]


def _among(choices: tuple[str, ...]):
    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        for v in values:
            if v not in choices:
                raise _invalid("names among " + ", ".join(choices), v)
        return values
    return check


def _once(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise _invalid("each name at most once", list(values))
    return values


def _frame(value):
    """[rows, cols], 'RxC', or one integer for both; integers only (8.0 is refused)."""
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[xX×]\s*\d+\s*", value):
        value = [int(v) for v in re.split(r"[xX×]", value)]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2 or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _invalid(FRAME_ALLOWED)
    return tuple(value)


def _frame_at_least(lowest: int):
    def check(value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < lowest:
            raise _invalid(f"{FRAME_ALLOWED}, each >= {lowest}", list(value))
        return value
    return check


def _null_name(value):
    if isinstance(value, str) and value.strip() in ("", "None", "null"):
        return None
    return value


def _named(pattern: re.Pattern, what: str):
    def check(mapping: dict) -> dict:
        for name in mapping:
            if not pattern.match(name):
                raise _invalid(what, name)
        return mapping
    return check


Int = Annotated[int, BeforeValidator(_integer)]
Number = Annotated[float, BeforeValidator(_no_bool), Field(allow_inf_nan=False)]
Names = Annotated[tuple[str, ...], BeforeValidator(_as_list), AfterValidator(_once)]
Fractions = Annotated[tuple[Annotated[Number, Field(ge=0, le=1)], ...], BeforeValidator(_as_list)]
VariableName = Annotated[Optional[str], BeforeValidator(_null_name)]
AnyCase = BeforeValidator(_case_insensitive)  # for Literal choices: "CPU" is cpu


def Frame(lowest: int):  # noqa: N802 (used as a type)
    return Annotated[tuple[int, int], BeforeValidator(_frame), AfterValidator(_frame_at_least(lowest))]


def Among(choices: tuple[str, ...]):  # noqa: N802 (used as a type)
    return Annotated[Names, AfterValidator(_among(choices))]


class _Section(BaseModel):
    # numbers where text is expected (a path "2021", a name) are kept as the text YAML wrote
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


# ------------------------------------------------------------------------------------------------
# The schema


class ModelConfig(_Section):
    type: Annotated[Literal["srgan"], AnyCase] = Field(
        "srgan", description="Type of super-resolution model (only srgan, after Ledig et al. 2016)")
    input_frame: Frame(1) = Field((8, 8), description="Low-resolution frame size of a tile: rows, cols")
    output_frame: Frame(2) = Field((64, 64), description="High-resolution frame size: rows, cols (a power-of-two "
                                   "multiple of input_frame, the same on both axes)")
    generator_filters: Int = Field(64, ge=1, le=1024, description="Number of filters in the generator")
    discriminator_filters: Int = Field(32, ge=1, le=1024,
                                       description="Number of filters in the discriminator (critic)")
    residual_blocks: Int = Field(6, ge=0, le=64, description="Residual blocks of the generator at low resolution")
    noise_channels: Int = Field(8, ge=1, le=256, description="Channels of the generator's noise input: each draw "
                                "is one ensemble member")


class AoIConfig(_Section):
    lat_min: Number = Field(44.0, ge=-90, le=90, description="Area of interest: southern latitude (degrees north)")
    lat_max: Number = Field(50.4, ge=-90, le=90, description="Area of interest: northern latitude (degrees north)")
    lon_min: Number = Field(5.0, ge=-180, le=180,
                            description="Area of interest: western longitude (degrees east, -180..180)")
    lon_max: Number = Field(11.4, ge=-180, le=180,
                            description="Area of interest: eastern longitude (degrees east, -180..180)")


class GridConfig(_Section):
    hr_resolution: Number = Field(0.1, gt=0, le=5, description="High-resolution grid spacing in degrees (the CAMS "
                                  "European grid); the low-resolution spacing is this times "
                                  "output_frame/input_frame")


class InputsConfig(_Section):
    low_res: Among(LOW_RES_VARIABLES) = Field(("pm2p5", "u10", "v10", "t2m", "lsm", "sp", "z", "pm10"),
                                              description="Low-resolution inputs (CAMS global / ERA5 short names)",
                                              json_schema_extra={"choices": LOW_RES_VARIABLES})
    high_res_static: Names = Field(("urban_frac", "orog_scal"), description="High-resolution static inputs (urban "
                                   "fraction, min-max scaled orography); each needs a source in every dataset")


class Point(_Section):
    name: str = Field("", description="Name of the location (CSV column 'point')")
    lat: Number = Field(0.0, ge=-90, le=90, description="Latitude (degrees north)")
    lon: Number = Field(0.0, ge=-180, le=180, description="Longitude (degrees east)")

    @model_validator(mode="before")
    @classmethod
    def _from_triple(cls, data):
        if isinstance(data, (list, tuple)) and len(data) == 3:  # [name, lat, lon]
            return dict(zip(("name", "lat", "lon"), data))
        return data


DEFAULT_POINTS = (Point(name="Milano", lat=45.464, lon=9.19), Point(name="Torino", lat=45.07, lon=7.686),
                  Point(name="Zurich", lat=47.377, lon=8.541))


class OutputsConfig(_Section):
    high_res: Among(HIGH_RES_OUTPUTS) = Field(("pm2p5",), description="High-resolution output(s) (CAMS European "
                                              "variables)", json_schema_extra={"choices": HIGH_RES_OUTPUTS})
    ensemble_size: Int = Field(10, ge=1, le=MAX_ENSEMBLE,
                               description="Output ensemble size: members generated per time step")
    quantiles: Fractions = Field((0.05, 0.25, 0.5, 0.75, 0.95), description="Ensemble quantiles written beside the "
                               "mean and standard deviation")
    points: Annotated[tuple[Point, ...], BeforeValidator(_as_list)] = Field(
        DEFAULT_POINTS, description="Point locations of interest written to the CSV (name, lat, lon); each inside "
        "the AoI")

    @model_validator(mode="after")
    def _check(self):
        q = self.quantiles
        if any(not 0 < v < 1 for v in q) or list(q) != sorted(set(q)):
            raise _invalid_at("outputs.quantiles", list(q), "increasing numbers between 0 and 1 (exclusive)")
        names = [p.name for p in self.points]
        for i, p in enumerate(self.points):
            if not p.name.strip():
                raise _invalid_at(f"outputs.points[{i}].name", p.name, "a non-empty name")
        if len(set(names)) != len(names):
            raise _invalid_at("outputs.points", names, "distinct names")
        if not self.high_res:
            raise _invalid_at("outputs.high_res", [], "at least one output")
        return self


class TrainingConfig(_Section):
    learning_rate: Number = Field(1e-5, gt=0, le=1, description="Learning rate (Adam) of generator and critic")
    batch_size: Int = Field(128, ge=1, le=65536, description="Batch size")
    batch_scaling: Int = Field(1, ge=1, le=1024, description="Larger-batch mode for an idle GPU: batch_size x this "
                               "and learning_rate x its square root; 1 = as given")
    adversarial_loss: Annotated[Literal["wasserstein"], AnyCase] = Field(
        "wasserstein", description="Type of adversarial loss: Wasserstein (Arjovsky et al. 2017) with gradient "
        "penalty")
    gradient_penalty: Number = Field(10.0, gt=0, description="Weight of the critic's gradient penalty (Gulrajani et "
                                     "al. 2017)")
    content_loss: Annotated[Literal["crps", "mse", "none"], AnyCase] = Field(
        "crps", description="Content term added to the generator loss: crps (fair CRPS of content_members draws), "
        "mse (of their mean), none")
    content_weight: Number = Field(100.0, ge=0, description="Weight of the content term (against the critic's score; "
                                   "100 kept the ensemble calibrated in bench/aq_eval.py, 10 made it "
                                   "under-dispersive)")
    content_members: Int = Field(4, ge=2, le=64, description="Draws per sample for the content term")
    critic_steps: Int = Field(5, ge=1, le=100, description="Critic updates per generator update")
    epochs: Int = Field(50, ge=1, description="Training epochs (passes over the training tiles)")
    beta1: Number = Field(0.5, ge=0, le=1, description="Adam beta1")
    beta2: Number = Field(0.9, ge=0, le=1, description="Adam beta2")
    checkpoint_every: Int = Field(1, ge=1, description="Write a checkpoint every N epochs")
    keep_checkpoints: Int = Field(3, ge=1, description="Checkpoints kept (the newest)")
    seed: Int = Field(0, ge=0, le=MAX_SEED, description="Random seed (weights, batches, noise)")
    device: Annotated[Literal["auto", "cpu", "cuda"], AnyCase] = Field(
        "auto", description="auto: the GPU when present, else the CPU")


class PreprocConfig(_Section):
    tile_stride: Int = Field(0, ge=0, description="Low-resolution cells between tile origins (0: input_frame, no "
                             "overlap)")
    regrid: Annotated[Literal["auto", "conservative", "bilinear"], AnyCase] = Field(
        "auto", description="Regridding: auto = conservative from finer sources, bilinear from coarser ones")


class StaticSource(_Section):
    path: str = Field("", description="netCDF or GeoTIFF file of the static field")
    variable: VariableName = Field(None, description="Variable in a netCDF file (default: the only 2-D data "
                                   "variable)")
    transform: Annotated[Literal["auto", "none", "minmax"], AnyCase] = Field(
        "auto", description="minmax scales to 0..1 over the AoI (auto: minmax for orog_* names, else none)")

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, data):
        return {"path": data} if isinstance(data, str) else data  # name: file

    @model_validator(mode="after")
    def _check(self):
        if not self.path:
            raise _invalid_at("path", self.path, "a file path", relative=True)
        return self


Paths = Annotated[tuple[str, ...], BeforeValidator(_as_list)]


class DatasetSources(_Section):
    cams_global: Paths = Field((), description="CAMS global reanalysis (EAC4) netCDF files: paths or glob patterns")
    cams_europe: Paths = Field((), description="CAMS European air quality analysis/forecast netCDF files (0.1°)")
    era5: Paths = Field((), description="ERA5 netCDF files; weather variables come from here first when given")
    static: Annotated[dict[str, StaticSource], BeforeValidator(lambda v: {} if v is None else v),
                      AfterValidator(_named(NAME_RE, "names of letters, digits and '_'"))] = Field(
        default_factory=dict, description="High-resolution static fields: name -> file (or {path, variable, "
        "transform})")


def _default_datasets() -> dict[str, DatasetSources]:
    return {"cams-europe": DatasetSources(
        cams_global=("data/cams-global/*.nc",), cams_europe=("data/cams-europe/*.nc",), era5=("data/era5/*.nc",),
        static={"urban_frac": StaticSource(path="data/static/urban_frac.nc"),
                "orog_scal": StaticSource(path="data/static/orography.tif")})}


class PathsConfig(_Section):
    tiles: str = Field("tiles", description="Folder of the training tiles written by aqgan-preproc")
    models: str = Field("models", description="Folder of checkpoints and the trained model (model.pt)")
    output: str = Field("output", description="Folder of the generated netCDF and CSV")
    datasets: Annotated[dict[str, DatasetSources], BeforeValidator(lambda v: {} if v is None else v),
                        AfterValidator(_named(DATASET_RE, "names of letters, digits, '_', '-' and '.'"))] = Field(
        default_factory=_default_datasets, description="Input data per dataset name (--dataset)")


class Config(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model architecture")
    aoi: AoIConfig = Field(default_factory=AoIConfig, description="Area of interest: lat-lon bounding box")
    grid: GridConfig = Field(default_factory=GridConfig, description="Grids")
    inputs: InputsConfig = Field(default_factory=InputsConfig, description="Model inputs")
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="Model outputs")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Training")
    preproc: PreprocConfig = Field(default_factory=PreprocConfig, description="Pre-processing")
    paths: PathsConfig = Field(default_factory=PathsConfig, description="Input and output data paths")
    _base_dir: str = PrivateAttr(".")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data):
        if isinstance(data, dict):  # "training:" with nothing under it: the defaults
            return {k: {} if v is None else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _check(self):
        """Rules that involve more than one section."""
        (ri, ci), (ro, co) = self.model.input_frame, self.model.output_frame
        if ro % ri or co % ci or ro // ri != co // ci:
            raise _invalid_at("model.output_frame", [ro, co], f"the same integer multiple of input_frame "
                                                             f"[{ri}, {ci}] on both axes")
        factor = ro // ri
        if factor < 2 or factor & (factor - 1):
            raise _invalid_at("model.output_frame", [ro, co], f"a power-of-two multiple (2, 4, 8, ...) of "
                                                             f"input_frame [{ri}, {ci}]; the factor is {factor}")
        a = self.aoi
        if a.lat_min >= a.lat_max:
            raise _invalid_at("aoi.lat_max", a.lat_max, f"a latitude > aoi.lat_min ({a.lat_min})")
        if a.lon_min >= a.lon_max:
            raise _invalid_at("aoi.lon_max", a.lon_max, f"a longitude > aoi.lon_min ({a.lon_min}); AoIs across "
                                                        "the antimeridian are not supported")
        for i, p in enumerate(self.outputs.points):
            if not (a.lat_min <= p.lat <= a.lat_max and a.lon_min <= p.lon <= a.lon_max):
                raise _invalid_at(f"outputs.points[{i}]", f"{p.name} ({p.lat}, {p.lon})",
                                  f"a location inside the AoI lat {a.lat_min}..{a.lat_max}, "
                                  f"lon {a.lon_min}..{a.lon_max}")
        if not self.inputs.low_res:
            raise _invalid_at("inputs.low_res", [], "at least one low-resolution input")
        for name in self.inputs.high_res_static:
            if not NAME_RE.match(name):
                raise _invalid_at("inputs.high_res_static", name, "names of letters, digits and '_'")
        if not self.paths.datasets:
            raise _invalid_at("paths.datasets", {}, "at least one dataset")
        for dname, ds in self.paths.datasets.items():
            missing = [s for s in self.inputs.high_res_static if s not in ds.static]
            if missing:
                raise _invalid_at(f"paths.datasets.{dname}.static", sorted(ds.static),
                                  f"a source for every high_res_static input (missing: {', '.join(missing)})")
            if not ds.cams_global and not ds.era5:
                raise _invalid_at(f"paths.datasets.{dname}", "no low-resolution source",
                                  "cams_global and/or era5 files")
        return self

    # ---- derived values

    @property
    def base_dir(self) -> str:
        """The folder of the configuration file (relative data paths start there)."""
        return self._base_dir

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
        """Plain data (YAML-able: lists, not tuples)."""
        return self.model_dump(mode="json")


# ------------------------------------------------------------------------------------------------
# Loading, and pydantic's errors as one line


def _invalid_at(path: str, value: Any, allowed: str, *, relative: bool = False) -> PydanticCustomError:
    """A rule across keys: the key it names is given here, not found from pydantic's location
    (``relative``: the key is below the model that checks it)."""
    return PydanticCustomError("config_rule", "invalid value",
                               {"path": path, "value": value, "allowed": allowed, "relative": relative})


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
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc) from None
    cfg._base_dir = base_dir
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


def _one_line(exc: ValidationError) -> ServiceError:
    """The first of pydantic's errors as the project's one line: the key as written in YAML
    (``outputs.points[0].lat``), the value, and what the key allows."""
    err = exc.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    path, info, section = _walk(err["loc"])
    if err["type"] == "config_rule":
        where = f"{path}.{ctx['path']}" if ctx.get("relative") and path else ctx["path"]
        return InvalidParameter(where, ctx["value"], ctx["allowed"])
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        keys = list(section.model_fields) if section else []
        parent = path.rpartition(".")[0] if path.endswith(key) else ""
        where = f"in '{parent}'" if parent else "at the top level"
        close = difflib.get_close_matches(key, keys, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return ServiceError(f"unknown key '{path}' in the configuration{hint}: allowed {where}: {', '.join(keys)}")
    value = ctx.get("value", err.get("input"))
    allowed = ctx.get("allowed") or _allowed(info, item=isinstance(err["loc"][-1], int))
    if err["type"] == "finite_number":
        allowed = allowed.replace("a number", "a finite number")
    return InvalidParameter(path or "configuration", value, allowed)


def _bare(tp):
    """The type without Annotated and Optional."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) is Union:
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _is_section(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _walk(loc) -> tuple[str, FieldInfo | None, type | None]:
    """pydantic's location as the YAML key path, with the last field met and its section."""
    tp, path, info, section = Config, "", None, Config
    for key in loc:
        tp = _bare(tp)
        if isinstance(key, int) and get_origin(tp) is tuple:
            path += f"[{key}]"
            tp = get_args(tp)[0]
        elif _is_section(tp):
            section = tp
            path = f"{path}.{key}" if path else str(key)
            info = tp.model_fields.get(key)
            if info is None:
                break
            tp = info.annotation
        elif get_origin(tp) is dict:
            path = f"{path}.{key}"
            tp = get_args(tp)[1]
    return path, info, section


def _bounds(info: FieldInfo) -> str:
    parts = []
    for m in info.metadata:
        if isinstance(m, annotated_types.Gt):
            parts.append(f"> {m.gt}")
        elif isinstance(m, annotated_types.Ge):
            parts.append(f">= {m.ge}")
        elif isinstance(m, annotated_types.Lt):
            parts.append(f"< {m.lt}")
        elif isinstance(m, annotated_types.Le):
            parts.append(f"<= {m.le}")
    return (" " + " and ".join(parts)) if parts else ""


def _allowed(info: FieldInfo | None, *, item: bool = False) -> str:
    """What a field (``item``: an item of a list field) accepts, in words, from its declaration."""
    if info is None:
        return "a mapping of the configuration's sections"
    tp = _bare(info.annotation)
    if item and get_origin(tp) is tuple:
        item_tp = get_args(tp)[0]
        tp = _bare(item_tp)
        info = FieldInfo.from_annotation(item_tp)
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if tp is int:
        return "an integer" + _bounds(info)
    if tp is float:
        return "a number" + _bounds(info)
    if tp is str:
        return "a string" if get_origin(info.annotation) is not Union else "a string or null"
    if _is_section(tp):
        return "a mapping with the keys " + ", ".join(tp.model_fields)
    if get_origin(tp) is dict:
        item = _bare(get_args(tp)[1])
        return "a mapping of names to " + ("{" + ", ".join(item.model_fields) + "}" if _is_section(item) else "values")
    if get_origin(tp) is tuple:
        item = _bare(get_args(tp)[0])
        if _is_section(item):
            return "a list of {" + ", ".join(item.model_fields) + "}"
        return "a list of " + {int: "integers", float: "numbers", str: "names"}.get(item, "values")
    return str(tp)


# ------------------------------------------------------------------------------------------------
# Rendering


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.as_dict(), sort_keys=False, allow_unicode=True)


def describe() -> str:
    """Every configuration key with its default and doc, for ``--help``."""
    lines = ["configuration keys (YAML; override any with --set KEY=VALUE):"]
    defaults = Config()
    for name, section in Config.model_fields.items():
        lines.append(f"  {name}: {section.description or ''}")
        sub = getattr(defaults, name)
        for key, f in type(sub).model_fields.items():
            value = getattr(sub, key)
            if key == "datasets":
                shown = "{NAME: {cams_global, cams_europe, era5, static}}"
            elif key == "points":
                shown = ", ".join(f"{p.name} ({p.lat}, {p.lon})" for p in value)
            elif isinstance(value, tuple):
                shown = "x".join(map(str, value)) if key.endswith("_frame") else ", ".join(map(str, value))
            else:
                shown = str(value)
            extra = ""
            tp = _bare(f.annotation)
            if get_origin(tp) is Literal:
                extra = f" [{'|'.join(map(str, get_args(tp)))}]"
            choices = (f.json_schema_extra or {}).get("choices")
            if choices:
                extra += f" [from: {', '.join(choices)}]"
            lines.append(f"    {name}.{key} = {shown}: {f.description or ''}{extra}")
    lines.append("  paths.datasets.NAME keys: " + "; ".join(
        f"{key}: {f.description or ''}" for key, f in DatasetSources.model_fields.items()))
    return "\n".join(lines)
