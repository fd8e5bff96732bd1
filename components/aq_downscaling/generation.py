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


def load_model(path: Path) -> TrainedModel:
    import torch

    from .model import Generator

    path = Path(path)
    if not path.is_file():
        raise ServiceError(f"model file not found: {path} (train one with aqgan-train)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ServiceError(f"not an aqgan model file: {path} ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ServiceError(f"not an aqgan model file: {path} (a training checkpoint? use model.pt)")
    if state.get("format_version") != MODEL_FORMAT_VERSION:
        raise ServiceError(f"{path}: model format version {state.get('format_version')} is not supported")
    arch = state["arch"]
    gen = Generator(arch["lr_channels"], arch["static_channels"], arch["out_channels"], arch["generator_filters"],
                    arch["noise_channels"], arch["residual_blocks"], arch["factor"], tuple(arch["skip"]))
    gen.load_state_dict(state["generator"])
    gen.eval()
    v = state["variables"]
    meta = {k: state[k] for k in ("epochs", "trained_on", "created", "software_version", "history", "dataset",
                                  "train_start", "train_end") if k in state}
    return TrainedModel(gen, arch, list(v["low_res"]), list(v["high_res"]), list(v["static"]), state["stats"],
                        state["static_params"], Grid(**state["lr_grid"]), state["static_fields"].numpy(),
                        state["config_yaml"], meta)


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
