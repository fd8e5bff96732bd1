"""The training tiles file written by ``aqgan-preproc`` (netCDF-4) and read by ``aqgan-train``.

Layout (all fields normalised, see ``normalise.py``)::

    lr(tile, lr_var, lr_y, lr_x)        low-resolution inputs of each tile
    hr(tile, hr_var, y, x)              high-resolution targets (CAMS European)
    static(position, static_var, y, x)  static inputs, one per tile position
    static_aoi(static_var, aoi_y, aoi_x) static inputs over the whole AoI grid
    time(tile), position(tile)          valid time and position index of each tile
    position_row/col(position)          tile origin in low-resolution cells of the AoI grid
    stat_mean/std/transform(variable)   normalisation statistics of every input/output variable
    static_transform/min/max(static_var) how static fields were scaled before normalisation
    lr_var/hr_var/static_var/variable   names

Global attributes give the AoI grid (``lr_south``, ``lr_west``, ``lr_res``, ``lr_rows``,
``lr_cols``, ``factor``), the frames, the dataset name, the time range and the source files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import ServiceError
from components.common.outputs import atomic_path

from .grid import Grid

TILES_FORMAT = "aqgan-tiles 1"


@dataclass
class TileSet:
    path: Path
    lr: np.ndarray
    hr: np.ndarray
    static: np.ndarray
    static_aoi: np.ndarray
    time: np.ndarray
    position: np.ndarray
    position_rc: np.ndarray
    lr_vars: list
    hr_vars: list
    static_vars: list
    stats: dict
    static_params: dict
    lr_grid: Grid
    factor: int
    attrs: dict


def write_tiles(path: Path, lr, hr, static, static_aoi, times, position, position_rc, lr_vars, hr_vars,
                static_vars, stats, static_params, lr_grid: Grid, factor: int, attrs: dict) -> Path:
    import netCDF4

    names = list(dict.fromkeys(list(lr_vars) + list(hr_vars) + list(static_vars)))
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.title = "aqgan training tiles"
            ds.format = TILES_FORMAT
            for k, v in attrs.items():
                ds.setncattr(k, v if not isinstance(v, (dict, list)) else json.dumps(v))
            for k, v in lr_grid.as_dict().items():
                ds.setncattr(f"lr_{k}", v)
            ds.factor = int(factor)
            dims = {"tile": lr.shape[0], "position": static.shape[0], "lr_var": len(lr_vars), "hr_var": len(hr_vars),
                    "static_var": len(static_vars), "variable": len(names), "lr_y": lr.shape[2], "lr_x": lr.shape[3],
                    "y": hr.shape[2], "x": hr.shape[3], "aoi_y": static_aoi.shape[1], "aoi_x": static_aoi.shape[2]}
            for k, n in dims.items():
                ds.createDimension(k, n)
            comp = {"zlib": True, "complevel": 1}
            ds.createVariable("lr", "f4", ("tile", "lr_var", "lr_y", "lr_x"), **comp)[:] = lr
            ds.createVariable("hr", "f4", ("tile", "hr_var", "y", "x"), chunksizes=(1, len(hr_vars), hr.shape[2],
                                                                                    hr.shape[3]), **comp)[:] = hr
            ds.createVariable("static", "f4", ("position", "static_var", "y", "x"), **comp)[:] = static
            ds.createVariable("static_aoi", "f4", ("static_var", "aoi_y", "aoi_x"), **comp)[:] = static_aoi
            v = ds.createVariable("time", "f8", ("tile",))
            v.units, v.calendar, v.standard_name = "hours since 1970-01-01 00:00:00", "proleptic_gregorian", "time"
            v[:] = (times.astype("datetime64[s]") - np.datetime64("1970-01-01T00:00:00")).astype(np.float64) / 3600
            ds.createVariable("position", "i4", ("tile",))[:] = position
            ds.createVariable("position_row", "i4", ("position",))[:] = position_rc[:, 0]
            ds.createVariable("position_col", "i4", ("position",))[:] = position_rc[:, 1]
            for dim, values in (("lr_var", lr_vars), ("hr_var", hr_vars), ("static_var", static_vars),
                                ("variable", names)):
                v = ds.createVariable(dim, str, (dim,))
                for i, s in enumerate(values):
                    v[i] = s
            ds.createVariable("stat_mean", "f8", ("variable",))[:] = [stats[n]["mean"] for n in names]
            ds.createVariable("stat_std", "f8", ("variable",))[:] = [stats[n]["std"] for n in names]
            v = ds.createVariable("stat_transform", str, ("variable",))
            for i, n in enumerate(names):
                v[i] = stats[n]["transform"]
            v = ds.createVariable("static_transform", str, ("static_var",))
            for i, n in enumerate(static_vars):
                v[i] = static_params[n]["transform"]
            ds.createVariable("static_min", "f8", ("static_var",))[:] = [static_params[n].get("min", np.nan)
                                                                         for n in static_vars]
            ds.createVariable("static_max", "f8", ("static_var",))[:] = [static_params[n].get("max", np.nan)
                                                                         for n in static_vars]
    return path


def read_tiles(path: Path) -> TileSet:
    import netCDF4

    try:
        ds = netCDF4.Dataset(path)
    except OSError as exc:
        raise ServiceError(f"not a readable tiles file: {path} ({exc})") from None
    with ds:
        if getattr(ds, "format", None) != TILES_FORMAT:
            raise ServiceError(f"{path} is not an aqgan tiles file (written by aqgan-preproc)")
        names = [str(s) for s in ds["variable"][:]]
        transforms = [str(s) for s in ds["stat_transform"][:]]
        stats = {n: {"transform": t, "mean": float(m), "std": float(s)}
                 for n, t, m, s in zip(names, transforms, ds["stat_mean"][:], ds["stat_std"][:])}
        static_vars = [str(s) for s in ds["static_var"][:]]
        static_params = {}
        for n, t, lo, hi in zip(static_vars, ds["static_transform"][:], ds["static_min"][:], ds["static_max"][:]):
            static_params[n] = {"transform": str(t)} if str(t) != "minmax" else \
                {"transform": "minmax", "min": float(lo), "max": float(hi)}
        hours = np.asarray(ds["time"][:], np.float64)
        times = np.datetime64("1970-01-01T00:00:00") + np.round(hours * 3600).astype("timedelta64[s]")
        grid = Grid(float(ds.lr_south), float(ds.lr_west), float(ds.lr_res), int(ds.lr_rows), int(ds.lr_cols))
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
        return TileSet(Path(path), np.asarray(ds["lr"][:], np.float32), np.asarray(ds["hr"][:], np.float32),
                       np.asarray(ds["static"][:], np.float32), np.asarray(ds["static_aoi"][:], np.float32), times,
                       np.asarray(ds["position"][:], np.int64),
                       np.stack([ds["position_row"][:], ds["position_col"][:]], 1).astype(np.int64),
                       [str(s) for s in ds["lr_var"][:]], [str(s) for s in ds["hr_var"][:]], static_vars, stats,
                       static_params, grid, int(ds.factor), attrs)


def find_tiles(folder: Path) -> list[Path]:
    """``folder`` itself (a tiles file), ``folder/tiles.nc``, or ``folder/*/tiles.nc``."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if (folder / "tiles.nc").is_file():
        return [folder / "tiles.nc"]
    return sorted(folder.glob("*/tiles.nc"))
