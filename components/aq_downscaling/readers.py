"""Readers of the input products, each brought to canonical names, units and orientation.

Layouts understood (checked against genuine files where a sample exists, see the tests):

- **CAMS global reanalysis (EAC4)** and **ERA5** from the data stores' ``grib_to_netcdf``
  (netCDF3 64-bit offset, ``CF-1.6``): dimensions ``time, latitude, longitude`` (latitude
  descending, longitude 0..360), ``time`` as int32 ``hours since 1900-01-01 00:00:00.0``, data
  packed as int16 with ``scale_factor``/``add_offset``/``_FillValue``/``missing_value``, units in
  ECMWF spelling (``kg m**-3``, ``m s**-1``, ``(0 - 1)``). Model-level files carry ``level``
  (``model_level_number``; the lowest level, the largest number, is taken).
- **ERA5 through cfgrib** (``CF-1.7``): ``lat``/``lon`` (either order), scalar ``time`` in
  ``seconds since 1970-01-01``, float32 data; and the newer data-store layout with ``valid_time``
  and size-1 ``number``/``expver`` coordinates. Forecasts (cfgrib: ``time`` the reference time,
  ``step`` the lead time, ``valid_time`` over ``time``, ``step`` or both; new ADS:
  ``valid_time(forecast_reference_time, forecast_period)``) are read at their valid time, a 2-D
  grid of valid times as one axis; legacy ERA5 + ERA5T downloads (an ``expver`` dimension) are
  combined per time step. Only surface fields: pressure levels, and a surface field on model
  levels or above 10 m, are refused (see ``GriddedFile._other_index``).
- **CAMS European air quality analysis/forecast** (0.1°, ``<species>_conc`` variables in µg/m3):
  ``time, level, latitude, longitude`` with ``level`` in metres (0 m = surface is taken), latitude
  descending, longitude either -25..45 or 0..360 wrapped (335.05 ... 359.95, 0.05 ... 44.95), and
  ``time`` in plain ``hours`` whose origin is in its long_name (``ANALYSIS time from 20211222``,
  ``FORECAST time from 20211222``); CF ``hours since`` times are read as well.
- **CAMS European air quality in GRIB2** (the data store's other format; checked on the real
  PM2.5 forecast in ``../shared/data/cams-europe-pm25-forecast-grib``): read with GDAL's GRIB
  driver through rasterio (no eccodes needed). One message per field, product definition template
  4.40 (4.41 for ensemble members), discipline 0, category 20 number 0 (mass density), the
  species from the constituent type (40009 PM2.5, 40008 PM10), units ``kg/(m^3)``, the valid time =
  reference time + the template's lead time (messages need not be in step order). Files are checked whole
  (message lengths and ``7777`` end markers) before GDAL opens them, so that a cut or damaged
  file is reported as such (GDAL only says "no raster dataset was successfully identified").

Every variable is returned in canonical units (concentrations in µg m-3, temperatures in K,
pressure in Pa, wind in m s-1, geopotential in m2 s-2, fractions 0..1). Static high-resolution
fields come from netCDF or from any raster GDAL reads (GeoTIFF in any CRS, warped with rasterio).
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.common import storage
from components.common.errors import _ENVIRONMENT_ERRNOS, ServiceError
from components.common.readers import check_netcdf_size, reading

from .grid import Grid, Regridder, choose_method

log = logging.getLogger(__name__)

GRAVITY = 9.80665
LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
INVARIANT = ("lsm", "z")  # time-invariant fields: the first time step of their source is used
CONCENTRATIONS = {"pm2p5", "pm10", "no2", "o3", "so2", "co", "nh3", "no", "dust", "nmvoc", "pans", "go3"}
CANONICAL_UNITS = {
    "concentration": "ug m-3", "t2m": "K", "d2m": "K", "sp": "Pa", "u10": "m s-1", "v10": "m s-1",
    "lsm": "1", "z": "m2 s-2", "blh": "m", "tcc": "1", "aod550": "1",
}
EUROPE_SUFFIX = "_conc"
COORD_DECIMALS = 4
INPUT_SUFFIXES = (".nc", ".grib", ".grib2", ".grb", ".grb2")  # files taken from an s3:// prefix
_TIME_FROM = re.compile(r"time\s+from\s+(\d{8})(?:[T ]?(\d{2}))?", re.IGNORECASE)
# Lowest concentration (ug m-3) read as numerical noise around zero (and set to 0, as
# normalise.forward would clip it); below it a field is not physical. The real CAMS samples in
# ../shared/data hold no negative value (European PM2.5 GRIB2: 465,010 values in 1.01..19.1; EAC4
# netCDFs: none), and neither packing can make one; -1 is a wide margin, and the offset of the log
# transform (normalise.LOG_OFFSET), below which log(x + 1) has no value.
MIN_CONCENTRATION = -1.0


def canonical_units(name: str) -> str:
    return CANONICAL_UNITS["concentration"] if name in CONCENTRATIONS else CANONICAL_UNITS.get(name, "1")


def _unit_key(units: str) -> str:
    u = (units or "").strip().replace("**", "").replace("^", "").replace("μ", "u").replace("µ", "u")
    u = u.replace(" ", "").replace("/m3", "m-3").replace("/s", "s-1").lower()
    return u


def to_canonical(name: str, units: str, values: np.ndarray, where: str) -> np.ndarray:
    """Convert ``values`` of variable ``name`` given in ``units`` to its canonical units."""
    key = _unit_key(units)
    if name in CONCENTRATIONS:
        factors = {"kgm-3": 1e9, "ugm-3": 1.0, "microgramsm-3": 1.0, "mgm-3": 1e3, "gm-3": 1e6}
        if key in factors:
            return values * factors[key]
    elif name in ("t2m", "d2m"):
        if key == "k":
            return values
        if key in ("degc", "c", "celsius", "degreesc", "degree_celsius", "degrees_celsius"):  # CF: degree_Celsius
            return values + 273.15
    elif name == "sp":
        if key == "pa":
            return values
        if key == "hpa":
            return values * 100.0
    elif name in ("u10", "v10"):
        if key in ("ms-1", "m/s", "ms**-1"):
            return values
    elif name in ("lsm", "tcc", "urban_frac"):
        if key in ("(0-1)", "1", "", "0-1", "fraction"):
            return values
        if key in ("%", "percent"):
            return values / 100.0
    elif name == "z":
        if key in ("m2s-2", "m2s-2"):
            return values
        if key == "m":
            return values * GRAVITY
    elif name == "blh":
        if key == "m":
            return values
    else:
        return values
    raise ServiceError(f"units {units!r} of {name} in {where} are not understood (expected "
                       f"{canonical_units(name)} or a known equivalent)")


def checked_values(name: str, variable: str, values: np.ndarray, where: str, when) -> np.ndarray:
    """``values`` of canonical variable ``name`` (``variable`` in the file ``where``, valid at
    ``when``) as read, in canonical units, missing values NaN: an infinite value (never a fill
    value: fill values are NaN here) is refused, so is a concentration below
    :data:`MIN_CONCENTRATION`; small negative concentrations become 0."""
    at = f" at {str(when)[:16]}" if when is not None else ""
    infinite = np.isinf(values)
    if infinite.any():
        raise ServiceError(f"{where}: {variable} holds {values[infinite][0]:g}{at}: not a number a field can hold "
                           "(missing values must be fill values)")
    if name not in CONCENTRATIONS:
        return values
    low = values < MIN_CONCENTRATION  # NaN (missing) compares False
    if low.any():
        raise ServiceError(f"{where}: {variable} is {values[low].min():g} ug m-3{at}, below {MIN_CONCENTRATION:g} "
                           "ug m-3: not a physical concentration")
    return np.where(values < 0.0, 0.0, values)


def _to_datetime64(values, path: Path | None = None) -> np.ndarray:
    """Decoded times (datetime objects, any shape) as datetime64[s] of the same shape."""
    values = np.asarray(values, dtype=object)
    out = []
    for v in values.ravel():
        if isinstance(v, dt.datetime) or hasattr(v, "year"):
            out.append(np.datetime64(dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second), "s"))
        else:
            where = f"{path.name}: " if path is not None else ""
            raise ServiceError(f"{where}cannot decode time value {v!r}")
    return np.array(out, dtype="datetime64[s]").reshape(values.shape)


def _decode_time_values(var, path: Path) -> np.ndarray:
    import netCDF4

    units = getattr(var, "units", "")
    raw = np.ma.filled(np.ma.asarray(var[...], dtype=np.float64), np.nan)
    if not np.isfinite(raw).all():  # a fill value: num2date would give it some date
        raise ServiceError(f"{path.name}: its {var.name!r} axis has a missing time value")
    if "since" in units:
        try:
            dates = netCDF4.num2date(raw, units, getattr(var, "calendar", "standard"),
                                     only_use_cftime_datetimes=False, only_use_python_datetimes=True)
        except (ValueError, TypeError) as exc:
            raise ServiceError(f"{path.name}: cannot decode time units {units!r}: {exc}") from None
        return _to_datetime64(dates, path)
    m = _TIME_FROM.search(getattr(var, "long_name", ""))
    if units.strip().lower() in ("hours", "hour", "h") and m:
        base = dt.datetime.strptime(m.group(1) + (m.group(2) or "00"), "%Y%m%d%H")
        return np.array([np.datetime64(base + dt.timedelta(hours=float(h)), "s") for h in raw.ravel()],
                        dtype="datetime64[s]").reshape(raw.shape)
    raise ServiceError(f"{path.name}: cannot tell the times: time units {units!r} without a reference date "
                       f"(long_name {getattr(var, 'long_name', '')!r})")


# Time coordinates. cfgrib (and the netCDF xarray writes from it) keeps ``time`` as the forecast
# REFERENCE time (standard_name forecast_reference_time), ``step`` as the lead time and
# ``valid_time`` = time + step over the ``time`` and ``step`` dimensions that exist (2-D when both
# do); the new CDS/ADS netCDF has ``valid_time`` (a dimension for (re)analyses, over
# forecast_reference_time x forecast_period for forecasts); grib_to_netcdf and the CAMS European
# netCDF have ``time`` only, the valid time. Fields are matched by valid time: ``valid_time`` when
# the file has it, else the reference time plus the lead time, else ``time``.
VALID_TIME = "valid_time"
REFERENCE_NAMES = ("time", "forecast_reference_time")
LEAD_NAMES = ("step", "forecast_period")
TIME_NAMES = (VALID_TIME,) + REFERENCE_NAMES + LEAD_NAMES  # dimensions of time, never levels or members
LEAD_SECONDS = {"nanoseconds": 1e-9, "microseconds": 1e-6, "milliseconds": 1e-3, "seconds": 1, "second": 1, "s": 1,
                "minutes": 60, "minute": 60, "min": 60, "hours": 3600, "hour": 3600, "h": 3600, "days": 86400,
                "day": 86400, "d": 86400}
# Dimensions other than time, latitude and longitude. Only surface fields are read: the lowest
# model level stands for the surface for the 3-D fields of EAC4's model-level files (go3, q, t);
# a field on pressure levels, and a surface field (SURFACE_ONLY, static inputs) on model levels,
# is refused rather than taken for the surface one.
MEMBER_DIMS = ("number", "realization", "member", "ensemble_member")
PRESSURE_DIMS = ("pressure_level", "isobaricInhPa", "isobaricInPa", "plev")
PRESSURE_UNITS = ("hpa", "pa", "mbar", "millibars", "millibar", "mb")
MODEL_LEVEL_DIMS = ("model_level", "hybrid", "model_level_number")
HEIGHT_DIMS = ("heightAboveGround", "height")
SURFACE_HEIGHT = 10.0  # m: the surface, 2 m screen level, 10 m winds; higher levels are not surface fields
SURFACE_ONLY = {"pm2p5", "pm10", "t2m", "d2m", "sp", "u10", "v10", "lsm", "z", "blh", "tcc", "aod550"}
# ECMWF archives the surface geopotential (orography) as z on model level 1 (ERA5, CAMS model-level data)
SURFACE_GEOPOTENTIAL_LEVEL = 1


def _lead_times(var, path: Path) -> np.ndarray:
    """Lead times (``step``, ``forecast_period``) as timedelta64[s], in the variable's shape."""
    units = getattr(var, "units", "").strip().lower()
    factor = LEAD_SECONDS.get(units)
    if factor is None:
        raise ServiceError(f"{path.name}: cannot read the lead times {var.name!r}: units {units!r} (expected hours, "
                           "minutes, seconds or days)")
    raw = np.ma.filled(np.ma.asarray(var[...], dtype=np.float64), np.nan)
    if not np.isfinite(raw).all():
        raise ServiceError(f"{path.name}: its lead times {var.name!r} have a missing value")
    return np.round(raw * factor).astype("timedelta64[s]")


def _on_dims(values: np.ndarray, vdims: tuple, dims: tuple, sizes: dict) -> np.ndarray:
    """``values`` over ``vdims`` with its axes in the order of ``dims`` (a superset), size 1 where absent."""
    order = sorted(range(len(vdims)), key=lambda i: dims.index(vdims[i]))
    return np.transpose(values, order).reshape([sizes[d] if d in vdims else 1 for d in dims])


def _is_reference_time(var) -> bool:
    return var.name == "forecast_reference_time" or \
        getattr(var, "standard_name", "") == "forecast_reference_time" or \
        "initial time" in getattr(var, "long_name", "").lower()


def _time_grid(ds, path: Path) -> tuple[np.ndarray, tuple, str]:
    """(valid times over the dimensions returned, those dimensions, the axis named in messages);
    (empty, (), '') for a file without times."""
    if VALID_TIME in ds.variables:
        var = ds.variables[VALID_TIME]
        return _decode_time_values(var, path).reshape(var.shape), tuple(var.dimensions), VALID_TIME
    ref_name = next((n for n in REFERENCE_NAMES if n in ds.variables), None)
    if ref_name is None:
        return np.array([], "datetime64[s]"), (), ""
    ref = ds.variables[ref_name]
    times = _decode_time_values(ref, path).reshape(ref.shape)
    lead_name = next((n for n in LEAD_NAMES if n in ds.variables), None)
    if lead_name is None:
        return times, tuple(ref.dimensions), ref_name
    lead_var = ds.variables[lead_name]
    lead = _lead_times(lead_var, path).reshape(lead_var.shape)
    if not _is_reference_time(ref):
        if (lead == np.timedelta64(0, "s")).all():  # an analysis: the time is the valid time
            return times, tuple(ref.dimensions), ref_name
        raise ServiceError(f"{path.name}: cannot tell when its fields are valid: it has lead times {lead_name!r} "
                           f"and no {VALID_TIME!r}, and {ref_name!r} is not marked as the forecast reference time "
                           "(standard_name forecast_reference_time)")
    dims = tuple(ref.dimensions) + tuple(d for d in lead_var.dimensions if d not in ref.dimensions)
    sizes = {d: ds.dimensions[d].size for d in dims}
    valid = _on_dims(times, tuple(ref.dimensions), dims, sizes) + _on_dims(lead, tuple(lead_var.dimensions), dims,
                                                                            sizes)
    return valid, dims, f"{ref_name} + {lead_name}"


@dataclass
class GriddedFile:
    """One netCDF file: ascending lat/lon, valid times, and its readable 2-D (per time) variables."""

    path: Path
    kind: str
    lat: np.ndarray = field(repr=False)
    lon: np.ndarray = field(repr=False)
    times: np.ndarray = field(repr=False)
    variables: dict = field(repr=False)  # canonical name -> netCDF variable name
    lat_flip: bool = False
    lon_order: np.ndarray = field(default=None, repr=False)
    time_dims: tuple = ()    # the dimensions the valid times run over (two for a forecast's time x step)
    time_at: np.ndarray = field(default=None, repr=False)  # (times.size, len(time_dims)) file indices per time

    @classmethod
    def open(cls, path: Path, kind: str) -> "GriddedFile":
        import netCDF4

        try:
            ds = netCDF4.Dataset(path)
        except OSError as exc:
            raise ServiceError(f"not a readable netCDF file: {path} ({' '.join(str(exc).split())})") from None
        try:
            # a classic netCDF file cut short reads as fill values, silently
            check_netcdf_size(path, f"{kind} file {Path(path).name}")
            lat_name = next((n for n in LAT_NAMES if n in ds.variables), None)
            lon_name = next((n for n in LON_NAMES if n in ds.variables), None)
            if lat_name is None or lon_name is None:
                raise ServiceError(f"{path.name} has no latitude/longitude coordinates (variables: "
                                   f"{', '.join(ds.variables)})")
            # float32 coordinates near 360° carry ~1e-5° of rounding: 1e-4° (10 m) is kept
            lat = np.round(np.asarray(ds.variables[lat_name][:], np.float64), COORD_DECIMALS)
            lon = np.round(np.asarray(ds.variables[lon_name][:], np.float64), COORD_DECIMALS)
            if lat.ndim != 1 or lon.ndim != 1:
                raise ServiceError(f"{path.name}: only regular latitude-longitude grids are supported")
            lat_flip = lat.size > 1 and lat[0] > lat[-1]
            if lat_flip:
                lat = lat[::-1]
            if lat.size > 1 and np.any(np.diff(lat) <= 0):
                raise ServiceError(f"{path.name}: latitudes are not monotonic")
            lon_wrapped = np.round(np.where(lon >= 180.0, lon - 360.0, lon), COORD_DECIMALS)
            order = np.argsort(lon_wrapped, kind="stable")
            lon_sorted = lon_wrapped[order]
            if lon_sorted.size > 1 and np.any(np.diff(lon_sorted) <= 0):
                raise ServiceError(f"{path.name}: longitudes repeat")
            grid, time_dims, time_name = _time_grid(ds, path)
            if time_name and grid.size == 0:  # no times at all means a static file: an empty axis is not one
                raise ServiceError(f"{path.name} holds no time step: its {time_name!r} axis is empty")
            axis = time_name + (f" ({' x '.join(time_dims)})" if len(time_dims) > 1 else "")
            times = grid.ravel()  # a forecast's (time, step) grid of valid times as one axis
            time_at = np.array(list(np.ndindex(grid.shape)), dtype=np.int64).reshape(times.size, len(time_dims))
            repeated = np.unique(times, return_counts=True)
            if (repeated[1] > 1).any():  # two fields for one time: which is meant cannot be told
                raise ServiceError(f"{path.name}: time {repeated[0][repeated[1] > 1][0]} appears "
                                   f"{repeated[1].max()} times on its {axis!r} axis")
            # Times are matched by value (inputs with targets, sources with each other) and a file's
            # steps are read and written in the order of ``times``: a backwards axis is read forwards,
            # like descending latitudes; one that goes back and forth is a broken concatenation. The
            # valid times of a (reference time x lead time) grid are put in order.
            steps = np.diff(times)
            backwards = bool(len(time_dims) == 1 and steps.size and (steps < np.timedelta64(0, "s")).all())
            if len(time_dims) > 1 or backwards:
                order_t = np.argsort(times, kind="stable")
                times, time_at = times[order_t], time_at[order_t]
            elif (steps < np.timedelta64(0, "s")).any():
                i = int(np.argmax(steps < np.timedelta64(0, "s")))
                raise ServiceError(f"{path.name}: its {time_name!r} axis is not monotonic: {str(times[i + 1])[:16]} "
                                   f"follows {str(times[i])[:16]} (step {i + 2} of {times.size}); give the time "
                                   "steps in order")
            coords = {lat_name, lon_name, "level", "expver", "surface", "time_bnds", *TIME_NAMES, *MEMBER_DIMS,
                      *PRESSURE_DIMS, *MODEL_LEVEL_DIMS, *HEIGHT_DIMS}
            variables = {}
            for name, var in ds.variables.items():
                if name in coords or var.ndim < 2 or lat_name not in var.dimensions or lon_name not in var.dimensions:
                    continue
                canonical = name[: -len(EUROPE_SUFFIX)] if kind == "cams_europe" and name.endswith(EUROPE_SUFFIX) \
                    else name
                variables[canonical] = name
            return cls(path, kind, lat, lon_sorted, times, variables, lat_flip,
                       None if np.array_equal(order, np.arange(order.size)) else order, time_dims, time_at)
        finally:
            ds.close()

    def label(self) -> str:
        return f"{self.kind} file {self.path.name}"

    def time_index(self, when: np.datetime64) -> int | None:
        if self.times.size == 0:
            return 0
        hits = np.nonzero(self.times == when)[0]
        return int(hits[0]) if hits.size else None

    def file_time_index(self, t_index: int) -> dict:
        """Indices on the file's time dimensions of ``times[t_index]`` (dimension -> index)."""
        if self.time_at is None or not self.times.size:
            return {}
        return dict(zip(self.time_dims, (int(i) for i in self.time_at[t_index])))

    def read(self, name: str, t_index: int, rows: slice, cols: slice) -> np.ndarray:
        """Window (rows, cols in ascending-lat / sorted-lon order) of variable ``name`` at time
        index ``t_index``, in canonical units, missing values as NaN."""
        arr, units = self.read_field(name, t_index, rows)
        arr = arr[:, cols]
        return checked_values(name, self.variables[name], to_canonical(name, units, arr, self.path.name),
                              self.path.name, self.times[t_index] if self.times.size else None)

    def read_field(self, name: str, t_index: int, rows: slice | None) -> tuple[np.ndarray, str]:
        """(rows of the 2-D field of ``name`` at ``times[t_index]`` in ascending-lat / sorted-lon
        order, every row for ``rows`` None, unpacked, missing values NaN; its units as stored)."""
        import netCDF4

        nc_name = self.variables[name]
        at_time = self.file_time_index(t_index)
        with netCDF4.Dataset(self.path) as ds:
            var = ds.variables[nc_name]
            var.set_auto_maskandscale(True)
            index, expver_axis = [], None
            for dim in var.dimensions:
                if dim in LAT_NAMES:
                    n = self.lat.size
                    if rows is None:
                        index.append(slice(None))
                    elif self.lat_flip:
                        index.append(slice(n - rows.stop, n - rows.start))
                    else:
                        index.append(slice(rows.start, rows.stop))
                elif dim in LON_NAMES:
                    index.append(slice(None))
                elif dim in at_time:
                    index.append(at_time[dim])
                elif dim == "expver" and ds.dimensions[dim].size > 1:
                    expver_axis = sum(isinstance(i, slice) for i in index)
                    index.append(slice(None))
                else:
                    index.append(self._other_index(ds, var, name, dim))
            missing_time = [d for d in self.time_dims if d not in var.dimensions and ds.dimensions[d].size > 1]
            if missing_time and any(d in var.dimensions for d in self.time_dims):
                has = ", ".join(d for d in self.time_dims if d in var.dimensions)
                raise ServiceError(f"{self.path.name}: {nc_name} runs over {has} but not {', '.join(missing_time)}, "
                                   "as its valid times do: cannot tell when its fields are valid")
            with _damage(self.path, nc_name):
                data = var[tuple(index)]
            units = getattr(var, "units", "")
            arr = np.ma.filled(np.ma.asarray(data, dtype=np.float64), np.nan)
            if expver_axis is not None:
                arr = self._one_expver(ds, nc_name, arr, expver_axis, t_index)
        if arr.ndim != 2:
            raise ServiceError(f"{self.path.name}: {nc_name} has more than one level or member; only surface "
                               "fields are used")
        if self.lat_flip:
            arr = arr[::-1]
        if self.lon_order is not None:
            arr = arr[:, self.lon_order]
        return arr, units

    def _one_expver(self, ds, nc_name: str, arr: np.ndarray, axis: int, t_index: int) -> np.ndarray:
        """The field of the one ``expver`` entry holding data. A legacy CDS request mixing ERA5
        (expver 1) and ERA5T (expver 5) is written with an ``expver`` dimension, each time step in
        one of them and missing in the other: the two are combined per time step."""
        held = [k for k in range(arr.shape[axis]) if np.isfinite(np.take(arr, k, axis=axis)).any()]
        if len(held) == 1:
            return np.take(arr, held[0], axis=axis)
        labels = np.ma.filled(ds.variables["expver"][:], -1).tolist() if "expver" in ds.variables else \
            list(range(arr.shape[axis]))
        when = f" at {str(self.times[t_index])[:16]}" if self.times.size else ""
        what = "none of" if not held else f"{len(held)} of"
        raise ServiceError(f"{self.path.name}: {nc_name}{when}: {what} its expver entries "
                           f"({', '.join(map(str, labels))}) hold data; ERA5 and ERA5T (expver 1 and 5) are "
                           "combined by taking, per time step, the one that has data: give one field per time step")

    def _other_index(self, ds, var, name: str, dim: str) -> int:
        """Index on a dimension other than time, latitude and longitude: the single member, the
        surface (the lowest model level for the 3-D fields of model-level files), else refused."""
        size = ds.dimensions[dim].size
        where = f"{self.path.name}: {var.name}"
        if dim in TIME_NAMES:  # a time dimension the valid times do not run over
            if size == 1:
                return 0
            raise ServiceError(f"{where} runs over {dim!r} ({size} entries), which its valid times "
                               f"({', '.join(self.time_dims) or 'none'}) do not: cannot tell when each field is valid")
        if dim in MEMBER_DIMS:
            if size == 1:
                return 0
            raise ServiceError(f"{where} has {size} ensemble members (dimension {dim!r}); give one member")
        if dim == "expver":  # one entry (several are combined by read_field)
            return 0
        coord = ds.variables.get(dim)
        values = np.asarray(np.ma.filled(np.ma.asarray(coord[:], np.float64), np.nan)).ravel() \
            if coord is not None and coord.ndim == 1 and coord.dtype.kind in "iuf" else None
        units = getattr(coord, "units", "").strip() if coord is not None else ""
        long_name = getattr(coord, "long_name", "").lower() if coord is not None else ""
        standard_name = getattr(coord, "standard_name", "").lower() if coord is not None else ""
        surface_only = name in SURFACE_ONLY or self.kind == "static"
        shown = (", ".join(f"{v:g}" for v in values[:5]) + (", ..." if values.size > 5 else "")) \
            if values is not None else f"{size} entries"
        if dim in MODEL_LEVEL_DIMS or "model_level" in long_name or "model level" in long_name \
                or "hybrid" in long_name or "hybrid" in standard_name:
            if values is None:
                raise ServiceError(f"{where} is on model levels (dimension {dim!r}) without level numbers")
            if name == "z" and SURFACE_GEOPOTENTIAL_LEVEL in values:
                return int(np.nonzero(values == SURFACE_GEOPOTENTIAL_LEVEL)[0][0])
            if surface_only:
                raise ServiceError(f"{where} is on model level {shown} (dimension {dim!r}): {name} must be the "
                                   "surface (single-level) field")
            return int(np.argmax(values))  # the lowest model level has the largest number
        if dim in PRESSURE_DIMS or units.lower() in PRESSURE_UNITS or standard_name == "air_pressure" \
                or "pressure" in long_name:
            raise ServiceError(f"{where} is on pressure level {shown}{' ' + units if units else ''} (dimension "
                               f"{dim!r}): only surface (single-level) fields are read")
        if dim == "surface" and size == 1:
            return 0
        if values is not None and (dim in HEIGHT_DIMS or units.lower() in ("m", "metre", "metres", "meter", "meters")):
            i = int(np.argmin(values))
            if values[i] > SURFACE_HEIGHT:
                raise ServiceError(f"{where} is at {shown} {units or 'm'} above the surface (dimension {dim!r}): only "
                                   f"surface fields (up to {SURFACE_HEIGHT:g} m) are read")
            return i  # height above the surface: 0 m (or the 2 m / 10 m of screen-level fields)
        if size == 1:
            return 0
        raise ServiceError(f"{where}: dimension {dim!r} has {size} entries; only surface fields "
                           "(one level, one member) are used")


# ------------------------------------------------------------------------------------------------
# GRIB2 (CAMS European air quality forecasts/analyses as the Atmosphere Data Store delivers them)

GRIB_MAGIC = b"GRIB"
GRIB_END = b"7777"
# Product definition templates of a chemical constituent at a point in time (the constituent type
# is their third value) and whether they carry an ensemble member: 4.41 ends with the type of
# ensemble forecast, the perturbation number and the number of members. Time-interval templates
# (4.42, 4.43: averages, accumulations) are not instantaneous fields and are refused.
GRIB_CHEMICAL_TEMPLATES = {40: False, 41: True}
# WMO code table 4.230 (atmospheric chemical constituent type) -> canonical short name.
GRIB_CONSTITUENTS = {40009: "pm2p5", 40008: "pm10"}
# Discipline 0, category 20 (atmospheric chemical constituents), number 0: mass density.
GRIB_MASS_DENSITY = (20, 0)


def is_grib(path: Path) -> bool:
    """``GRIB`` and an edition number (1 or 2): other files are left to the netCDF reader."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head[:4] == GRIB_MAGIC and len(head) == 8 and head[7] in (1, 2)


def scan_grib(path: Path) -> int:
    """Number of GRIB2 messages, after checking that the file is whole: every message starts with
    ``GRIB``, is edition 2, and its declared length ends exactly on ``7777`` (GDAL refuses a cut
    file without saying why, and reads bytes after the last message without complaint)."""
    size = path.stat().st_size
    count, offset = 0, 0
    with open(path, "rb") as fh:
        while offset < size:
            fh.seek(offset)
            head = fh.read(16)
            if head[:4] != GRIB_MAGIC:
                raise ServiceError(f"{path.name}: not a GRIB file or corrupt: no GRIB message at byte {offset}")
            if len(head) < 16:
                raise ServiceError(f"{path.name}: truncated GRIB file: message {count + 1} cut short at byte {offset}")
            if head[7] != 2:
                raise ServiceError(f"{path.name}: GRIB edition {head[7]} is not supported (only GRIB2)")
            length = int.from_bytes(head[8:16], "big")
            if offset + length > size:
                raise ServiceError(f"{path.name}: truncated GRIB file: message {count + 1} declares {length} "
                                   f"bytes, {size - offset} are left")
            fh.seek(offset + length - 4)
            if length < 20 or fh.read(4) != GRIB_END:
                raise ServiceError(f"{path.name}: corrupt GRIB file: message {count + 1} does not end with 7777")
            offset += length
            count += 1
    if count == 0:
        raise ServiceError(f"{path.name}: empty GRIB file")
    return count


@dataclass
class GribField:
    band: int                 # 1-based band (message) number in GDAL's order
    name: str
    valid: np.datetime64
    member: int | None        # perturbation number of an ensemble template, else None


@dataclass
class GribFile:
    """A GRIB2 file of surface fields on one regular latitude-longitude grid, read with GDAL's GRIB
    driver (through rasterio). Same interface as :class:`GriddedFile`: ascending lat/lon, sorted
    valid times, canonical names (``pm2p5`` from constituent 40009), one field per name and time."""

    path: Path
    kind: str
    lat: np.ndarray = field(repr=False)
    lon: np.ndarray = field(repr=False)
    times: np.ndarray = field(repr=False)
    variables: dict = field(repr=False)  # canonical name -> GRIB element
    fields: dict = field(repr=False)     # (name, valid time) -> GribField
    units: dict = field(repr=False)      # canonical name -> units as GRIB gives them
    reference_time: np.datetime64 | None = None
    members: tuple = ()                  # member numbers (ensemble templates); () for single fields
    lat_flip: bool = False
    lon_order: np.ndarray = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path, kind: str) -> "GribFile":
        import rasterio

        path = Path(path)
        messages = scan_grib(path)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), reading(path, f"{kind} file {path.name}"):
            with rasterio.open(path) as ds:
                if ds.count != messages:
                    raise ServiceError(f"{path.name}: GDAL reads {ds.count} of its {messages} GRIB messages")
                t = ds.transform
                if ds.crs is None or not ds.crs.is_geographic or t.b != 0 or t.d != 0:
                    raise ServiceError(f"{path.name}: only regular latitude-longitude GRIB grids are supported")
                # a damaged grid section still opens: its sizes and spacing come out as nonsense
                south, east = t.f + ds.height * t.e, t.c + ds.width * t.a
                if not (t.a > 0 and t.e < 0 and -90.001 <= south < t.f <= 90.001 and -360 <= t.c < east <= 360.001):
                    raise ServiceError(f"{path.name}: corrupt GRIB file: impossible grid ({ds.height} x {ds.width} "
                                       f"cells of {t.a:g}° x {-t.e:g}° from {t.f:g} N, {t.c:g} E)")
                lat_desc = np.round(t.f + (np.arange(ds.height) + 0.5) * t.e, COORD_DECIMALS)
                lon = np.round(t.c + (np.arange(ds.width) + 0.5) * t.a, COORD_DECIMALS)
                tags = [ds.tags(b) for b in range(1, ds.count + 1)]
        fields, units, members, refs = {}, {}, set(), set()
        for band, tag in enumerate(tags, start=1):
            name, member, lead = _grib_identity(tag, band, path)
            ref = _grib_seconds(tag, "GRIB_REF_TIME", band, path)
            valid = ref + lead
            refs.add(ref)
            key = (name, valid)
            if member is not None:
                members.add(member)
            if key in fields:
                what = "ensemble members" if member is not None else "fields"
                raise ServiceError(f"{path.name}: several {what} of {name} valid at {str(valid)[:16]} (messages "
                                   f"{fields[key].band} and {band}); give one field per time step")
            fields[key] = GribField(band, name, valid, member)
            units[name] = tag.get("GRIB_UNIT", "").strip("[]").replace("(", "").replace(")", "")
        lat_flip = lat_desc.size > 1 and lat_desc[0] > lat_desc[-1]
        lat = lat_desc[::-1] if lat_flip else lat_desc
        lon_wrapped = np.round(np.where(lon >= 180.0, lon - 360.0, lon), COORD_DECIMALS)
        order = np.argsort(lon_wrapped, kind="stable")
        times = np.unique(np.array([k[1] for k in fields], dtype="datetime64[s]"))
        return cls(path, kind, lat, lon_wrapped[order], times, {n: n for n, _ in fields}, fields, units,
                   min(refs) if refs else None, tuple(sorted(members)), lat_flip,
                   None if np.array_equal(order, np.arange(order.size)) else order)

    def label(self) -> str:
        return f"{self.kind} file {self.path.name}"

    def time_index(self, when: np.datetime64) -> int | None:
        hits = np.nonzero(self.times == when)[0]
        return int(hits[0]) if hits.size else None

    def read(self, name: str, t_index: int, rows: slice, cols: slice) -> np.ndarray:
        import rasterio

        fld = self.fields.get((name, self.times[t_index]))
        if fld is None:
            raise ServiceError(f"{self.path.name}: no {name} valid at {str(self.times[t_index])[:16]}")
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), reading(self.path, self.label()):
            with rasterio.open(self.path) as ds:
                arr = ds.read(fld.band, masked=True).astype(np.float64).filled(np.nan)
        if self.lat_flip:
            arr = arr[::-1]
        if self.lon_order is not None:
            arr = arr[:, self.lon_order]
        return checked_values(name, f"{name} (GRIB message {fld.band})",
                              to_canonical(name, self.units[name], arr[rows, cols], self.path.name), self.path.name,
                              fld.valid)


def _grib_seconds(tag: dict, key: str, band: int, path: Path) -> np.datetime64:
    try:
        return np.datetime64(int(tag[key]), "s")
    except (KeyError, ValueError):
        raise ServiceError(f"{path.name}: GRIB message {band} has no {key.lower()}") from None


# Code table 4.4 (indicator of unit of time range) -> seconds
GRIB_TIME_UNITS = {0: 60, 1: 3600, 2: 86400, 10: 3 * 3600, 11: 6 * 3600, 12: 12 * 3600, 13: 1}


def _grib_identity(tag: dict, band: int, path: Path) -> tuple[str, int | None, np.timedelta64]:
    """(canonical name, member number or None, lead time) of one message, from its product
    definition. The lead time is taken from the template: GDAL leaves the valid time at 0 for
    template 4.41."""
    try:
        pdtn = int(tag.get("GRIB_PDS_PDTN", ""))
        values = [int(v) for v in tag.get("GRIB_PDS_TEMPLATE_ASSEMBLED_VALUES", "").split()]
    except ValueError:
        raise ServiceError(f"{path.name}: GRIB message {band} has an unreadable product definition") from None
    discipline = tag.get("GRIB_DISCIPLINE", "").split("(")[0]
    if pdtn not in GRIB_CHEMICAL_TEMPLATES or discipline != "0" or len(values) < 3 or \
            tuple(values[:2]) != GRIB_MASS_DENSITY:
        raise ServiceError(f"{path.name}: GRIB message {band} is not a chemical concentration (product template "
                           f"4.{pdtn}, element {tag.get('GRIB_ELEMENT', '?')}); expected CAMS mass densities "
                           "at a point in time (template 4.40 or 4.41, category 20)")
    name = GRIB_CONSTITUENTS.get(values[2])
    if name is None:
        raise ServiceError(f"{path.name}: GRIB message {band} holds constituent type {values[2]}, which is not "
                           f"read (known: {', '.join(f'{k} ({v})' for k, v in GRIB_CONSTITUENTS.items())})")
    member = None
    if GRIB_CHEMICAL_TEMPLATES[pdtn]:
        member = values[-2]
    # values 9 and 10 (0-based 8, 9): indicator of unit of time range, forecast time
    unit = GRIB_TIME_UNITS.get(values[8]) if len(values) > 9 else None
    if unit is None:
        raise ServiceError(f"{path.name}: GRIB message {band} has a forecast time in units that are not read "
                           f"(code {values[8] if len(values) > 8 else '?'} of table 4.4)")
    return name, member, np.timedelta64(values[9] * unit, "s")


def open_gridded(path: Path, kind: str):
    """A GRIB2 or netCDF input file, by its first bytes."""
    path = Path(path)
    try:
        grib = is_grib(path)
    except OSError as exc:
        raise ServiceError(f"cannot read {kind} file {path}: {exc.strerror}") from None
    return GribFile.open(path, kind) if grib else GriddedFile.open(path, kind)


def expand_patterns(patterns: tuple[str, ...], resolve, workdir: Path, what: str) -> list[Path]:
    """Files of a source: local paths or glob patterns, or s3:// objects and prefixes (fetched)."""
    files: list[Path] = []
    for i, pattern in enumerate(patterns):
        if storage.is_s3(pattern):
            local = storage.fetch_input(pattern, workdir / f"{what}-{i}")
            found = sorted(p for p in local.rglob("*") if p.suffix in INPUT_SUFFIXES) if local.is_dir() \
                else [local]
        else:
            full = resolve(pattern)
            found = sorted(Path(p) for p in glob.glob(full, recursive=True)) if glob.has_magic(full) else \
                ([Path(full)] if Path(full).exists() else [])
        if not found:
            raise ServiceError(f"no {what} file matches {pattern!r}")
        files.extend(p for p in found if p.is_file())
    return files


class Source:
    """All files of one kind (cams_global, cams_europe, era5) of a dataset."""

    def __init__(self, kind: str, files: list[Path]):
        self.kind = kind
        self.files = [open_gridded(p, kind) for p in files]
        self._regridders: dict = {}

    def has(self, name: str) -> bool:
        return any(name in f.variables for f in self.files)

    def names(self) -> list[str]:
        return sorted({n for f in self.files for n in f.variables})

    def times(self, name: str) -> np.ndarray:
        ts = [f.times for f in self.files if name in f.variables]
        return np.unique(np.concatenate(ts)) if ts else np.array([], "datetime64[s]")

    def read(self, name: str, when: np.datetime64 | None, grid: Grid, method: str) -> np.ndarray:
        """Variable ``name`` at time ``when`` (None: the first time, for invariant fields) on ``grid``."""
        for f in self.files:
            if name not in f.variables:
                continue
            t = 0 if when is None else f.time_index(when)
            if t is None:
                continue
            key = (id(f), grid, method)
            if key not in self._regridders:
                self._regridders[key] = Regridder(f.lat, f.lon, grid, method, label=f.label())
            rg = self._regridders[key]
            return rg(f.read(name, t, rg.rows, rg.cols))
        raise ServiceError(f"{self.kind}: no file holds {name} at {when}")

    def regrid_method(self, name: str, grid: Grid, requested: str) -> str:
        f = next(f for f in self.files if name in f.variables)
        step = max(float(np.median(np.diff(f.lat))) if f.lat.size > 1 else 1.0,
                   float(np.median(np.diff(f.lon))) if f.lon.size > 1 else 1.0)
        return choose_method(requested, step, grid.res)


# ------------------------------------------------------------------------------------------------
# Static high-resolution fields


def read_static(path: Path, variable: str | None, grid: Grid, name: str, requested: str) -> np.ndarray:
    """A static field on ``grid`` from a netCDF file or a GDAL raster (GeoTIFF), canonical units:
    orography in metres (geopotential divided by g), fractions 0..1 (percent divided by 100)."""
    if not path.exists():
        raise ServiceError(f"static input {name}: file not found: {path}")
    if path.is_dir():
        raise ServiceError(f"static input {name}: {path} is a folder: give one netCDF or GeoTIFF file")
    if _is_netcdf(path):
        return _static_netcdf(path, variable, grid, name, requested)
    return _static_raster(path, grid, name, requested)


def _is_netcdf(path: Path) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return magic[:3] == b"CDF" or magic == b"\x89HDF"


def _static_units(name: str, units: str, values: np.ndarray, where: str) -> np.ndarray:
    key = _unit_key(units)
    if name.startswith("orog"):
        if key in ("m", "", "metres", "meters"):
            return values
        if key == "m2s-2":
            return values / GRAVITY
        raise ServiceError(f"units {units!r} of static input {name} in {where} are not understood (expected m "
                           "or m**2 s**-2)")
    if key in ("%", "percent"):
        return values / 100.0
    return values


def _static_netcdf(path: Path, variable: str | None, grid: Grid, name: str, requested: str) -> np.ndarray:
    f = GriddedFile.open(path, "static")
    if variable is None:
        candidates = list(f.variables)
        if len(candidates) != 1:
            raise ServiceError(f"static input {name}: {path.name} holds {len(candidates)} gridded variables "
                               f"({', '.join(candidates) or 'none'}); name one with 'variable'")
        variable = candidates[0]
    if variable not in f.variables:
        raise ServiceError(f"static input {name}: {path.name} has no variable {variable!r} (it has "
                           f"{', '.join(f.variables) or 'none'})")
    nc_name = f.variables[variable]
    f.variables = {name: nc_name}
    rg = Regridder(f.lat, f.lon, grid, requested, label=f"static input {name} ({path.name})")
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        units = getattr(ds.variables[nc_name], "units", "")
    raw = _read_unconverted(f, name, rg)
    return rg(_static_units(name, units, raw, path.name))


def _read_unconverted(f: GriddedFile, name: str, rg: Regridder) -> np.ndarray:
    arr, _ = f.read_field(name, 0, None)  # the first time step of a file with times
    return arr[rg.rows, rg.cols]


def _static_raster(path: Path, grid: Grid, name: str, requested: str) -> np.ndarray:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin
    from rasterio.warp import reproject

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioError as exc:
        raise ServiceError(f"static input {name}: {path.name} is neither netCDF nor a readable raster "
                           f"({' '.join(str(exc).split())})") from None
    with src:
        if src.crs is None:
            raise ServiceError(f"static input {name}: {path.name} has no coordinate reference system")
        units = (src.units[0] if src.units and src.units[0] else "") or src.tags(1).get("units", "")
        step = abs(src.res[0])
        if not src.crs.is_geographic:
            step = step / 111_320.0
        method = choose_method(requested, step, grid.res)
        resampling = Resampling.average if method == "conservative" else Resampling.bilinear
        dst = np.full((grid.rows, grid.cols), np.nan, np.float64)
        with reading(path, f"static input {name}: {path.name}"):
            reproject(rasterio.band(src, 1), dst, dst_transform=from_origin(grid.west, grid.north, grid.res, grid.res),
                      dst_crs="EPSG:4326", dst_nodata=np.nan, resampling=resampling, src_nodata=src.nodata)
    dst = dst[::-1]  # north-up raster rows -> ascending latitude
    return _static_units(name, units, dst, path.name)


class _damage:
    """A read error of netCDF data (a damaged HDF5 chunk, bytes missing) as one line naming the
    file and the variable."""

    def __init__(self, path: Path, variable: str):
        self.path, self.variable = Path(path), variable

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            return False  # the machine, not the file: the contract reports it
        if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, ServiceError):
            detail = " ".join(str(exc).split()).replace(f": '{self.path}'", "")
            raise ServiceError(f"{self.path.name}: cannot read {self.variable}: truncated or corrupt netCDF file "
                               f"({detail})") from None
        return False
