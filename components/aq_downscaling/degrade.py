"""Inputs for evaluating the downscaling on a real high-resolution product, where no matching
low-resolution product exists.

- :func:`write_degraded`: the 0.1° field of a CAMS European file (GRIB2 or netCDF) averaged over
  blocks of ``factor`` x ``factor`` cells (area-weighted, the service's conservative regridding)
  onto the low-resolution grid, written as a CAMS global (EAC4) input: netCDF, ``pm2p5`` in
  ``kg m**-3``, latitude descending, longitude 0..360, ``hours since 1900``, as the data store's
  ``grib_to_netcdf`` writes it. The model then sees a perfect area mean, without the model and
  resolution differences between the real global and European products.
- :func:`write_land_fraction`: land fraction on a grid (GeoTIFF, EPSG:4326), from the GLOBE land
  mask embedded in ``global-land-mask`` sampled at ``oversample`` points per cell and axis: a
  static high-resolution field available for any AoI.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from components.common.errors import ServiceError
from components.common.outputs import atomic_path

from .grid import Grid, Regridder
from .readers import open_gridded

EPOCH_1900 = dt.datetime(1900, 1, 1)
KG_PER_UG = 1e-9


def write_degraded(src: Path, out: Path, hr_grid: Grid, factor: int, variable: str = "pm2p5") -> dict:
    """Block means of ``variable`` of ``src`` over ``hr_grid`` (cells of ``factor`` x ``factor``)
    for every time step, written to ``out``. Returns a summary (grid, steps, mean)."""
    f = open_gridded(Path(src), "cams_europe")
    if variable not in f.variables:
        raise ServiceError(f"{Path(src).name} holds no {variable} (it holds {', '.join(f.variables) or 'nothing'})")
    lr_grid = Grid(hr_grid.south, hr_grid.west, round(hr_grid.res * factor, 10), hr_grid.rows // factor,
                   hr_grid.cols // factor)
    if lr_grid.rows < 1 or lr_grid.cols < 1:
        raise ServiceError(f"the grid {hr_grid.describe()} is smaller than one block of {factor}x{factor} cells")
    rg = Regridder(f.lat, f.lon, lr_grid, "conservative", label=f.label())
    values = np.stack([rg(f.read(variable, i, rg.rows, rg.cols)) for i in range(f.times.size)])
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ServiceError(f"{Path(src).name}: {bad} low-resolution cells without data")
    _write_eac4_layout(Path(out), f.times, lr_grid, variable, values)
    return {"grid": lr_grid.as_dict(), "time_steps": int(f.times.size), "mean_ug_m3": float(values.mean()),
            "method": f"area-weighted block mean of {factor}x{factor} cells of {hr_grid.res:g}°"}


def _write_eac4_layout(path: Path, times: np.ndarray, grid: Grid, variable: str, values_ug: np.ndarray) -> None:
    import netCDF4

    hours = np.array([(t.astype("datetime64[s]").astype(dt.datetime) - EPOCH_1900).total_seconds() / 3600
                      for t in times], np.int32)
    lon360 = np.mod(grid.lon, 360.0)
    order = np.argsort(lon360, kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF3_64BIT_OFFSET") as ds:
            ds.Conventions = "CF-1.6"
            ds.history = f"block mean of a CAMS European product ({grid.res:g}° cells)"
            ds.createDimension("longitude", grid.cols)
            ds.createDimension("latitude", grid.rows)
            ds.createDimension("time", hours.size)
            v = ds.createVariable("longitude", "f4", ("longitude",))
            v.units, v.long_name = "degrees_east", "longitude"
            v[:] = lon360[order]
            v = ds.createVariable("latitude", "f4", ("latitude",))
            v.units, v.long_name = "degrees_north", "latitude"
            v[:] = grid.lat[::-1]
            v = ds.createVariable("time", "i4", ("time",))
            v.units, v.long_name, v.calendar = "hours since 1900-01-01 00:00:00.0", "time", "gregorian"
            v[:] = hours
            v = ds.createVariable(variable, "f4", ("time", "latitude", "longitude"))
            v.units = "kg m**-3"
            v[:] = (values_ug[:, ::-1, :][:, :, order] * KG_PER_UG).astype(np.float32)


def write_land_fraction(path: Path, grid: Grid, oversample: int = 10) -> float:
    """Land fraction (0..1) of every cell of ``grid`` as a float32 GeoTIFF; returns its mean."""
    import rasterio
    from rasterio.transform import from_origin

    from components.common.landmask import LandSeaMask

    fine = from_origin(grid.west, grid.north, grid.res / oversample, grid.res / oversample)
    shape = (grid.rows * oversample, grid.cols * oversample)
    sea = LandSeaMask("EPSG:4326", fine, shape, "Sea", working_spacing_m=0.0).remove(0, 0, *shape)
    land = 1.0 - sea.reshape(grid.rows, oversample, grid.cols, oversample).mean(axis=(1, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", driver="GTiff", width=grid.cols, height=grid.rows, count=1, dtype="float32",
                           crs="EPSG:4326", transform=from_origin(grid.west, grid.north, grid.res, grid.res)) as dst:
            dst.write(land.astype(np.float32), 1)  # rows north to south
    return float(land.mean())
