"""The trained model file, ensemble generation and the CF-1.8 netCDF and CSV outputs.

``model.pt`` is self-contained: architecture, generator weights, variable names, normalisation
statistics, static-field transforms, the low-resolution grid it was trained on and its static
fields (normalised), the configuration as YAML and the loss history. It is read with
``torch.load(weights_only=True)`` (tensors and plain data only).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components import __version__
from components.common.errors import ServiceError
from components.common.outputs import atomic_path

from .grid import Grid
from .normalise import denormalise, normalise

MODEL_FORMAT = "aqgan-model"
MODEL_FORMAT_VERSION = 1
STANDARD_NAMES = {  # CF standard names of the CAMS European species (mass concentration at the surface)
    "pm2p5": ("mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air", "PM2.5"),
    "pm10": ("mass_concentration_of_pm10_ambient_aerosol_particles_in_air", "PM10"),
    "no2": ("mass_concentration_of_nitrogen_dioxide_in_air", "NO2"),
    "o3": ("mass_concentration_of_ozone_in_air", "O3"),
    "so2": ("mass_concentration_of_sulfur_dioxide_in_air", "SO2"),
    "co": ("mass_concentration_of_carbon_monoxide_in_air", "CO"),
    "nh3": ("mass_concentration_of_ammonia_in_air", "NH3"),
    "no": ("mass_concentration_of_nitrogen_monoxide_in_air", "NO"),
    "dust": ("mass_concentration_of_dust_dry_aerosol_particles_in_air", "dust"),
    "nmvoc": ("mass_concentration_of_nmvoc_expressed_as_carbon_in_air", "NMVOC"),
    "pans": ("mass_concentration_of_peroxyacetyl_nitrate_in_air", "PANs"),
}
ATTRIBUTION = "Contains modified Copernicus Atmosphere Monitoring Service information"


@dataclass
class TrainedModel:
    generator: object
    arch: dict
    lr_variables: list
    hr_variables: list
    static_variables: list
    stats: dict
    static_params: dict
    lr_grid: Grid
    static_fields: np.ndarray  # (C, H, W) normalised, on lr_grid refined by the factor
    config_yaml: str
    meta: dict

    @property
    def factor(self) -> int:
        return int(self.arch["factor"])


def save_model(path: Path, generator, arch: dict, variables: dict, stats: dict, static_params: dict,
               lr_grid: Grid, static_fields: np.ndarray, config_yaml: str, history: list, extra: dict) -> Path:
    import torch

    state = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "model_type": "srgan",
             "software_version": __version__, "arch": arch, "variables": variables, "stats": stats,
             "static_params": static_params, "lr_grid": lr_grid.as_dict(),
             "static_fields": torch.from_numpy(np.ascontiguousarray(static_fields, np.float32)),
             "config_yaml": config_yaml, "history": history,
             "generator": {k: v.detach().cpu() for k, v in generator.state_dict().items()}, **extra}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


MODEL_KEYS = ("arch", "variables", "stats", "static_params", "lr_grid", "static_fields", "config_yaml", "generator")
ARCH_LIMITS = {"lr_channels": (1, 64), "static_channels": (0, 64), "out_channels": (1, 64),
               "generator_filters": (1, 1024), "noise_channels": (1, 256), "residual_blocks": (0, 64),
               "factor": (2, 1024)}
OTHER_FORMATS = {"s2-patch-classifier-model": "an s2-patch-classifier model",
                 "s2-patch-classifier-encoder": "an s2-patch-classifier encoder checkpoint"}
WHAT = "an aqgan model file"


def load_model(path: Path) -> TrainedModel:
    """The model of a ``model.pt`` written by aqgan-train, checked before use: the file's kind and
    version, the architecture and variables it records, its statistics, grid and static fields,
    and generator weights that fit that architecture exactly. Anything else is a ServiceError
    naming the file."""
    from .config import load_config
    from .model import Generator
    from components.common.modelfile import first_words, load_weights, read_torch_file, require

    path = Path(path)
    if not path.is_file():
        raise ServiceError(f"model file not found: {path} (train one with aqgan-train)")
    name = path.name
    state = read_torch_file(path, WHAT)
    _check_kind(state, path)
    require(state, MODEL_KEYS, path)
    arch = _check_arch(state["arch"], path)
    lr_vars, hr_vars, static_vars = _check_variables(state["variables"], arch, path)
    _check_stats(state["stats"], lr_vars + hr_vars + static_vars, path)
    _check_static_params(state["static_params"], static_vars, path)
    lr_grid = _check_grid(state["lr_grid"], path)
    static_fields = _check_static_fields(state["static_fields"], len(static_vars), lr_grid, arch["factor"], path)
    if not isinstance(state["config_yaml"], str):
        raise ServiceError(f"{name}: its configuration is not readable (not YAML text)")
    try:
        load_config(text=state["config_yaml"])
    except Exception as e:  # noqa: BLE001 - YAML and schema errors alike
        raise ServiceError(f"{name}: its configuration is not readable ({first_words(e)})") from None
    gen = Generator(arch["lr_channels"], arch["static_channels"], arch["out_channels"], arch["generator_filters"],
                    arch["noise_channels"], arch["residual_blocks"], arch["factor"], tuple(arch["skip"]))
    load_weights(gen, state["generator"], path, "generator")
    gen.eval()
    meta = {k: state[k] for k in ("epochs", "trained_on", "created", "software_version", "history", "dataset",
                                  "train_start", "train_end") if k in state}
    return TrainedModel(gen, arch, lr_vars, hr_vars, static_vars, state["stats"], state["static_params"], lr_grid,
                        static_fields, state["config_yaml"], meta)


def _check_kind(state, path: Path) -> None:
    name = path.name
    if not isinstance(state, dict):
        raise ServiceError(f"{name} is not {WHAT} (it holds a {type(state).__name__}, not a model)")
    fmt = state.get("format")
    if fmt == MODEL_FORMAT:
        version = state.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MODEL_FORMAT_VERSION:
            raise ServiceError(f"{name}: model format version {version!r} is not supported (this software reads "
                               f"version {MODEL_FORMAT_VERSION})")
        return
    if fmt in OTHER_FORMATS:
        raise ServiceError(f"{name} is {OTHER_FORMATS[fmt]}, not an aqgan model (give the model.pt of aqgan-train)")
    if {"critic", "opt_g", "generator"} <= set(state):
        raise ServiceError(f"{name} is a training checkpoint of aqgan-train, not a model: give the model.pt it "
                           "writes at the end")
    raise ServiceError(f"{name} is not {WHAT} (no {MODEL_FORMAT!r} format mark; give the model.pt of aqgan-train)")


def _check_arch(arch, path: Path) -> dict:
    from components.common.modelfile import integer

    name = path.name
    if not isinstance(arch, dict):
        raise ServiceError(f"{name}: arch is not a table of hyper-parameters")
    for key, (lo, hi) in ARCH_LIMITS.items():
        if key not in arch:
            raise ServiceError(f"{name}: arch.{key} is missing")
        integer(arch[key], path, f"arch.{key}", lo, hi)
    factor = arch["factor"]
    if factor & (factor - 1):
        raise ServiceError(f"{name}: arch.factor is {factor}, not a power of two (2, 4, 8, ...)")
    skip = arch.get("skip")
    if not isinstance(skip, (list, tuple)) or len(skip) != arch["out_channels"]:
        raise ServiceError(f"{name}: arch.skip is {skip!r}, not a list of {arch['out_channels']} input indexes")
    for i, value in enumerate(skip):
        integer(value, path, f"arch.skip[{i}]", -1, arch["lr_channels"] - 1)
    return arch


def _names(value, path: Path, key: str) -> list:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ServiceError(f"{path.name}: variables.{key} is not a list of names")
    if len(set(value)) != len(value):
        raise ServiceError(f"{path.name}: variables.{key} names a variable twice ({', '.join(value)})")
    return list(value)


def _check_variables(variables, arch: dict, path: Path) -> tuple[list, list, list]:
    from .config import HIGH_RES_OUTPUTS, LOW_RES_VARIABLES, NAME_RE

    name = path.name
    if not isinstance(variables, dict):
        raise ServiceError(f"{name}: variables is not a table of low_res, high_res and static names")
    for key in ("low_res", "high_res", "static"):
        if key not in variables:
            raise ServiceError(f"{name}: variables.{key} is missing")
    lr_vars = _names(variables["low_res"], path, "low_res")
    hr_vars = _names(variables["high_res"], path, "high_res")
    static_vars = _names(variables["static"], path, "static")
    for v in lr_vars:
        if v not in LOW_RES_VARIABLES:
            raise ServiceError(f"{name}: unknown low-resolution input {v!r} (known: {', '.join(LOW_RES_VARIABLES)})")
    for v in hr_vars:
        if v not in HIGH_RES_OUTPUTS:
            raise ServiceError(f"{name}: unknown high-resolution output {v!r} (known: {', '.join(HIGH_RES_OUTPUTS)})")
    for v in static_vars:
        if not NAME_RE.match(v):
            raise ServiceError(f"{name}: {v!r} is not a name of a static input")
    for label, found, key, what in (("low-resolution inputs", lr_vars, "lr_channels", "input channels"),
                                    ("high-resolution outputs", hr_vars, "out_channels", "output channels"),
                                    ("static inputs", static_vars, "static_channels", "static channels")):
        if len(found) != arch[key]:
            raise ServiceError(f"{name}: {len(found)} {label} for {arch[key]} {what} (arch.{key})")
    skip = [lr_vars.index(v) if v in lr_vars else -1 for v in hr_vars]
    if list(arch["skip"]) != skip:
        raise ServiceError(f"{name}: arch.skip {list(arch['skip'])} does not match the variables (expected {skip})")
    return lr_vars, hr_vars, static_vars


def _check_stats(stats, names: list, path: Path) -> None:
    from components.common.modelfile import number

    name = path.name
    if not isinstance(stats, dict):
        raise ServiceError(f"{name}: stats is not a table of normalisation statistics")
    for v in names:
        s = stats.get(v)
        if s is None:
            raise ServiceError(f"{name}: no normalisation statistics for {v}")
        if not isinstance(s, dict) or s.get("transform") not in ("log", "none"):
            raise ServiceError(f"{name}: the normalisation statistics of {v} are not valid ({s!r:.80})")
        number(s.get("mean"), path, f"stats.{v}.mean")
        number(s.get("std"), path, f"stats.{v}.std", positive=True)


def _check_static_params(params, names: list, path: Path) -> None:
    from components.common.modelfile import number

    name = path.name
    if not isinstance(params, dict):
        raise ServiceError(f"{name}: static_params is not a table")
    for v in names:
        p = params.get(v, {})
        if not isinstance(p, dict) or p.get("transform", "none") not in ("minmax", "none"):
            raise ServiceError(f"{name}: the scaling of static input {v} is not valid ({p!r:.80})")
        if p.get("transform") == "minmax":
            number(p.get("min"), path, f"static_params.{v}.min")
            number(p.get("max"), path, f"static_params.{v}.max")


def _check_grid(grid, path: Path) -> Grid:
    from components.common.modelfile import integer, number

    name = path.name
    keys = ("south", "west", "res", "rows", "cols")
    if not isinstance(grid, dict) or set(grid) != set(keys):
        raise ServiceError(f"{name}: lr_grid is not a grid ({', '.join(keys)})")
    south, west = number(grid["south"], path, "lr_grid.south"), number(grid["west"], path, "lr_grid.west")
    res = number(grid["res"], path, "lr_grid.res", positive=True)
    rows, cols = integer(grid["rows"], path, "lr_grid.rows", 1), integer(grid["cols"], path, "lr_grid.cols", 1)
    if not (-90 <= south and south + rows * res <= 90 + 1e-6):
        raise ServiceError(f"{name}: lr_grid spans latitudes {south:g}..{south + rows * res:g}, outside -90..90")
    return Grid(south, west, res, rows, cols)


def _check_static_fields(values, channels: int, grid: Grid, factor: int, path: Path) -> np.ndarray:
    import torch

    name = path.name
    want = (channels, grid.rows * factor, grid.cols * factor)
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise ServiceError(f"{name}: static_fields is not a floating-point tensor")
    if tuple(values.shape) != want:
        raise ServiceError(f"{name}: static fields are {'x'.join(map(str, values.shape))}, the model's grid needs "
                           f"{'x'.join(map(str, want))}")
    if not bool(torch.isfinite(values).all()):
        raise ServiceError(f"{name}: non-finite values in the static fields")
    return values.float().numpy()


def generate(model: TrainedModel, lr_phys: np.ndarray, static_norm: np.ndarray, members: int, seed: int,
             device=None, progress=None) -> np.ndarray:
    """Ensemble (T, members, C_out, H, W) in physical units from low-resolution inputs
    (T, C_lr, h, w) in physical units and normalised static fields (C_s, H, W)."""
    import torch

    device = device or torch.device("cpu")
    gen = model.generator.to(device)
    t_count, _, h, w = lr_phys.shape
    lr_norm = np.stack([normalise(lr_phys[:, i], model.stats[v]) for i, v in enumerate(model.lr_variables)], 1)
    out = np.empty((t_count, members, len(model.hr_variables), h * model.factor, w * model.factor), np.float32)
    rng = torch.Generator().manual_seed(seed)
    static = torch.from_numpy(np.ascontiguousarray(static_norm, np.float32)).to(device)
    chunk = max(1, min(members, 64))
    with torch.no_grad():
        for ti in range(t_count):
            lr = torch.from_numpy(np.ascontiguousarray(lr_norm[ti:ti + 1])).to(device)
            for m0 in range(0, members, chunk):
                m = min(chunk, members - m0)
                noise = torch.randn(gen.noise_shape(m, (h, w)), generator=rng).to(device)
                y = gen(lr.expand(m, -1, -1, -1), static.expand(m, -1, -1, -1), noise).cpu().numpy()
                for c, var in enumerate(model.hr_variables):
                    out[ti, m0:m0 + m, c] = denormalise(y[:, c], model.stats[var])
            if progress is not None:
                progress.advance()
    return out


def _hours_since_epoch(times: np.ndarray) -> np.ndarray:
    return (times.astype("datetime64[s]") - np.datetime64("1970-01-01T00:00:00")).astype(np.float64) / 3600.0


def write_ensemble_netcdf(path: Path, times: np.ndarray, grid: Grid, variables: list, ens: np.ndarray,
                          quantiles: tuple, attrs: dict) -> dict:
    """CF-1.8 netCDF: ``<var>(time, member, lat, lon)`` plus ``<var>_mean``, ``<var>_std`` and
    ``<var>_quantile(time, quantile, lat, lon)``; returns summary figures."""
    import netCDF4

    q = np.asarray(quantiles, np.float64)
    summary = {}
    years = sorted({str(t)[:4] for t in times})
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.Conventions = "CF-1.8"
            ds.title = "Probabilistic downscaling of CAMS air quality: high-resolution ensemble"
            ds.institution = attrs.get("institution", "")
            ds.source = f"aqgan srgan generator (eo-kfp-services {__version__})"
            now = dt.datetime.now(dt.timezone.utc)
            ds.history = f"{now:%Y-%m-%dT%H:%M:%SZ} created by {attrs.get('command', 'aqgan')}"
            ds.references = ("AI4Copernicus D5.2 section 5.2.1; Ledig et al. 2016 (arXiv:1609.04802); "
                             "Arjovsky et al. 2017 (arXiv:1701.07875)")
            ds.comment = (f"{ens.shape[1]} ensemble members per time step, each one draw of the generator's noise "
                          "input. "
                          f"{ATTRIBUTION} {'-'.join([years[0], years[-1]] if len(years) > 1 else years)}.")
            for k, v in attrs.items():
                if k not in ("institution", "command"):
                    ds.setncattr(k, v)
            ds.createDimension("time", len(times))
            ds.createDimension("member", ens.shape[1])
            ds.createDimension("lat", grid.rows)
            ds.createDimension("lon", grid.cols)
            ds.createDimension("quantile", q.size)
            ds.createDimension("bnds", 2)
            v = ds.createVariable("time", "f8", ("time",))
            v.standard_name, v.long_name, v.axis = "time", "time", "T"
            v.units, v.calendar = "hours since 1970-01-01 00:00:00", "proleptic_gregorian"
            v[:] = _hours_since_epoch(times)
            v = ds.createVariable("member", "i4", ("member",))
            v.standard_name, v.long_name, v.units = "realization", "ensemble member", "1"
            v[:] = np.arange(ens.shape[1])
            for name, centres, edges, std, axis, units in (
                    ("lat", grid.lat, grid.lat_edges, "latitude", "Y", "degrees_north"),
                    ("lon", grid.lon, grid.lon_edges, "longitude", "X", "degrees_east")):
                v = ds.createVariable(name, "f8", (name,))
                v.standard_name, v.long_name, v.units, v.axis = std, std, units, axis
                v.bounds = f"{name}_bnds"
                v[:] = np.round(centres, 8)
                b = ds.createVariable(f"{name}_bnds", "f8", (name, "bnds"))
                b[:] = np.round(np.stack([edges[:-1], edges[1:]], 1), 8)
            v = ds.createVariable("quantile", "f8", ("quantile",))
            v.long_name, v.units = "probability of the ensemble quantile", "1"
            v[:] = q
            for c, var in enumerate(variables):
                std_name, label = STANDARD_NAMES.get(var, (None, var))
                data = ens[:, :, c]
                comp = {"zlib": True, "complevel": 4, "fill_value": np.float32(-9999.0)}
                v = ds.createVariable(var, "f4", ("time", "member", "lat", "lon"),
                                      chunksizes=(1, 1, grid.rows, grid.cols), **comp)
                _var_attrs(v, std_name, f"{label} mass concentration at the surface, ensemble member")
                v[:] = data
                mean = data.mean(axis=1)
                std = data.std(axis=1, ddof=1) if data.shape[1] > 1 else np.zeros_like(mean)
                v = ds.createVariable(f"{var}_mean", "f4", ("time", "lat", "lon"), **comp)
                _var_attrs(v, std_name, f"{label} ensemble mean")
                v.cell_methods = "realization: mean"
                v[:] = mean
                v = ds.createVariable(f"{var}_std", "f4", ("time", "lat", "lon"), **comp)
                _var_attrs(v, std_name, f"{label} ensemble standard deviation")
                v.cell_methods = "realization: standard_deviation"
                v[:] = std
                v = ds.createVariable(f"{var}_quantile", "f4", ("time", "quantile", "lat", "lon"), **comp)
                _var_attrs(v, std_name, f"{label} ensemble quantiles (linear interpolation between members)")
                v[:] = np.quantile(data, q, axis=1).transpose(1, 0, 2, 3)
                summary[var] = {"mean": float(mean.mean()), "mean_std": float(std.mean()),
                                "min": float(data.min()), "max": float(data.max())}
    return summary


def _var_attrs(v, std_name, long_name) -> None:
    if std_name:
        v.standard_name = std_name
    v.long_name = long_name
    v.units = "ug m-3"
    v.coordinates = "lat lon"


def write_points_csv(path: Path, times: np.ndarray, grid: Grid, variables: list, ens: np.ndarray, points,
                     quantiles: tuple) -> int:
    """One row per time, point and variable: the values of the grid cell holding the point."""
    q = np.asarray(quantiles, np.float64)
    members = ens.shape[1]
    header = ["time", "point", "lat", "lon", "cell_lat", "cell_lon", "variable", "units", "mean", "std"] + \
        [f"q{p:g}" for p in q] + [f"member_{m}" for m in range(members)]
    rows = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for ti, t in enumerate(times):
                stamp = str(t.astype("datetime64[s]")) + "Z"
                for p in points:
                    r, c = grid.index_of(p.lat, p.lon)
                    for vi, var in enumerate(variables):
                        values = ens[ti, :, vi, r, c].astype(np.float64)
                        std = values.std(ddof=1) if members > 1 else 0.0
                        w.writerow([stamp, p.name, p.lat, p.lon, round(float(grid.lat[r]), 6),
                                    round(float(grid.lon[c]), 6), var, "ug m-3", f"{values.mean():.4f}",
                                    f"{std:.4f}"] + [f"{v:.4f}" for v in np.quantile(values, q)] +
                                   [f"{v:.4f}" for v in values])
                        rows += 1
    return rows
