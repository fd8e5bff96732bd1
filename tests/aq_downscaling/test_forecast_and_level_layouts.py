"""Time axes and vertical levels of the layouts xarray/cfgrib and the data stores write:

* cfgrib's forecast layout: ``time`` is the forecast REFERENCE time, ``step`` the lead time and
  ``valid_time`` = time + step (over ``time``, ``step`` or both); the new ADS forecast netCDF has
  ``valid_time`` over forecast_reference_time x forecast_period. Fields are read at their valid
  time; a 2-D grid of valid times is one time axis (refused when a time repeats);
* only surface fields: a field on a pressure level, a surface field on a model level or at a
  height above 10 m is one line naming the file, the variable, the dimension and its value (the
  lowest model level of EAC4's 3-D fields stays read, see test_readers.py);
* legacy ERA5 + ERA5T downloads (an ``expver`` dimension, each time step in one entry) are
  combined per time step; a missing time value names the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from components.aq_downscaling.cli import preproc_main
from components.aq_downscaling.grid import Grid
from components.aq_downscaling.readers import GriddedFile, read_static
from components.common.errors import ServiceError
from tests.aq_downscaling.test_corrupt_inputs import AOI, DATES, assert_refused
from tests.fixtures.cams_products import make_scene, scene_config, write_scene

LAT = np.array([43.5, 42.75, 42.0])  # north-up, as the data stores write it
LON = np.array([3.0, 3.75, 4.5])
ALL = (slice(0, LAT.size), slice(0, LON.size))
T0 = np.datetime64("2021-01-01T00:00:00", "s")
EPOCH = np.datetime64("1970-01-01T00:00:00", "s")
HOUR = np.timedelta64(3600, "s")


def _seconds(times) -> np.ndarray:
    return ((np.asarray(times, "datetime64[s]") - EPOCH) // np.timedelta64(1, "s")).astype(np.int64)


def _write(path: Path, dims: dict, variables: list) -> Path:
    """A netCDF4 file: ``dims`` name -> size, ``variables`` (name, dims, values, attributes)."""
    with netCDF4.Dataset(path, "w") as ds:
        for name, size in {**dims, "latitude": LAT.size, "longitude": LON.size}.items():
            ds.createDimension(name, size)
        rows = [("latitude", ("latitude",), LAT, {"units": "degrees_north"}),
                ("longitude", ("longitude",), LON, {"units": "degrees_east"})]
        for name, vdims, values, attrs in rows + variables:
            values = np.asarray(values)
            kind = "i8" if values.dtype.kind in "iu" else "f4" if vdims[-2:] == ("latitude", "longitude") else "f8"
            var = ds.createVariable(name, kind, vdims, fill_value=attrs.pop("_FillValue", None))
            var.setncatts(attrs)
            var[...] = values
    return path


def _time(name, dims, times, **attrs):
    return (name, dims, _seconds(times), {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian",
                                          **attrs})


def _reference(dims, times):
    return _time("time", dims, times, standard_name="forecast_reference_time", long_name="initial time of forecast")


def _step(name, dims, hours):
    return (name, dims, np.asarray(hours, np.int64), {"units": "hours", "standard_name": "forecast_period",
                                                      "long_name": "time since forecast_reference_time"})


def _fields(values) -> np.ndarray:
    """Fields (any leading shape) of constant ``values`` over the grid."""
    values = np.asarray(values, np.float64)
    return values[..., None, None] + np.zeros((LAT.size, LON.size))


def _t2m(dims, values):
    return ("t2m", dims + ("latitude", "longitude"), _fields(values), {"units": "K"})


# ------------------------------------------------------------------------------------------------
# Forecast time axes


def test_cfgrib_forecast_fields_are_read_at_their_valid_time(tmp_path):
    """xarray.open_dataset(engine="cfgrib").to_netcdf() of 24 h forecasts: time(time) the reference
    time, scalar step 24 h, valid_time(time); each field is valid 24 h after its reference time."""
    valid = T0 + np.arange(3) * 24 * HOUR
    path = _write(tmp_path / "era5_fc.nc", {"time": 3}, [
        _reference(("time",), valid - 24 * HOUR), _step("step", (), 24),
        _time("valid_time", ("time",), valid, standard_name="time"),
        _t2m(("time",), 280.0 + np.arange(3))])
    f = GriddedFile.open(path, "era5")
    np.testing.assert_array_equal(f.times, valid)
    for k, when in enumerate(valid):
        assert f.read("t2m", f.time_index(when), *ALL) == pytest.approx(np.full((3, 3), 280.0 + k))


def test_cfgrib_step_axis_is_the_time_axis(tmp_path):
    """The CAMS European forecast GRIB through cfgrib: scalar time, step(step), valid_time(step);
    read like the GRIB file itself (valid time = reference time + lead time)."""
    steps = np.array([0, 1, 2, 3])
    path = _write(tmp_path / "cams_europe_fc.nc", {"step": steps.size}, [
        _reference((), T0), _step("step", ("step",), steps),
        _time("valid_time", ("step",), T0 + steps * HOUR, standard_name="time"),
        ("heightAboveGround", (), 0.0, {"units": "m"}),
        ("pm2p5_conc", ("step", "latitude", "longitude"), _fields(1e-9 * (5.0 + steps)), {"units": "kg m**-3"})])
    f = GriddedFile.open(path, "cams_europe")
    np.testing.assert_array_equal(f.times, T0 + steps * HOUR)
    assert f.time_dims == ("step",)
    for k in steps:
        assert f.read("pm2p5", int(k), *ALL) == pytest.approx(np.full((3, 3), 5.0 + k))


TWO_D = {
    # cfgrib with several reference times and steps: valid_time(time, step), t2m(time, step, ...)
    "cfgrib time x step": ("time", "step", ("time", "step")),
    # the new ADS forecast netCDF: valid_time(frt, fp), fields over (forecast_period, forecast_reference_time)
    "new ADS forecast_period x forecast_reference_time": ("forecast_reference_time", "forecast_period",
                                                          ("forecast_period", "forecast_reference_time")),
}


@pytest.mark.parametrize("ref_dim, step_dim, field_dims", TWO_D.values(), ids=TWO_D.keys())
def test_a_2d_valid_time_is_one_time_axis(ref_dim, step_dim, field_dims, tmp_path):
    refs, steps = T0 + np.array([0, 12]) * HOUR, np.array([0, 3, 6])
    valid = refs[:, None] + steps[None, :] * HOUR                      # (ref, step)
    code = 200.0 + 10 * np.arange(2)[:, None] + np.arange(3)[None, :]  # tells (ref, step) apart
    code_on_dims = code if field_dims[0] == ref_dim else code.T
    path = _write(tmp_path / "fc2d.nc", {ref_dim: 2, step_dim: 3}, [
        _time(ref_dim, (ref_dim,), refs, standard_name="forecast_reference_time"), _step(step_dim, (step_dim,), steps),
        _time("valid_time", (ref_dim, step_dim), valid, standard_name="time"),
        _t2m(field_dims, code_on_dims)])
    f = GriddedFile.open(path, "era5")
    np.testing.assert_array_equal(f.times, np.sort(valid.ravel()))
    for i in range(2):
        for j in range(3):
            t = f.time_index(valid[i, j])
            assert f.read("t2m", t, *ALL) == pytest.approx(np.full((3, 3), code[i, j])), (i, j)


def test_a_2d_valid_time_that_repeats_a_time_is_refused(tmp_path):
    refs, steps = T0 + np.array([0, 6]) * HOUR, np.array([0, 6, 12])  # 06 and 12 UTC come twice
    path = _write(tmp_path / "fc_overlap.nc", {"time": 2, "step": 3}, [
        _reference(("time",), refs), _step("step", ("step",), steps),
        _time("valid_time", ("time", "step"), refs[:, None] + steps[None, :] * HOUR, standard_name="time"),
        _t2m(("time", "step"), np.zeros((2, 3)))])
    with pytest.raises(ServiceError, match=r"^fc_overlap\.nc: time 2021-01-01T06:00:00 appears 2 times on its "
                                           r"'valid_time \(time x step\)' axis$"):
        GriddedFile.open(path, "era5")


def test_reference_time_plus_step_without_valid_time(tmp_path):
    refs, steps = T0 + np.array([0, 24]) * HOUR, np.array([6, 12])
    path = _write(tmp_path / "fc_no_valid_time.nc", {"time": 2, "step": 2}, [
        _reference(("time",), refs), _step("step", ("step",), steps),
        _t2m(("time", "step"), [[1.0, 2.0], [3.0, 4.0]])])
    f = GriddedFile.open(path, "era5")
    np.testing.assert_array_equal(f.times, T0 + np.array([6, 12, 30, 36]) * HOUR)
    assert [float(f.read("t2m", t, *ALL)[0, 0]) for t in range(4)] == [1.0, 2.0, 3.0, 4.0]


def test_lead_times_on_a_time_of_unknown_meaning_are_refused(tmp_path):
    path = _write(tmp_path / "fc_ambiguous.nc", {"time": 2}, [
        _time("time", ("time",), T0 + np.arange(2) * HOUR, long_name="time"), _step("step", (), 24),
        _t2m(("time",), [1.0, 2.0])])
    with pytest.raises(ServiceError, match=r"^fc_ambiguous\.nc: cannot tell when its fields are valid: it has lead "
                                           r"times 'step' and no 'valid_time'"):
        GriddedFile.open(path, "era5")


# ------------------------------------------------------------------------------------------------
# Vertical levels

PRESSURE = {
    "new CDS pressure_level": ("pressure_level", {"units": "hPa", "standard_name": "air_pressure"}),
    "cfgrib isobaricInhPa": ("isobaricInhPa", {"units": "hPa", "long_name": "pressure"}),
    "grib_to_netcdf level in millibars": ("level", {"units": "millibars", "long_name": "pressure_level"}),
}


@pytest.mark.parametrize("variable", ["z", "go3"])
@pytest.mark.parametrize("dim, attrs", PRESSURE.values(), ids=PRESSURE.keys())
def test_a_field_on_a_pressure_level_is_refused(dim, attrs, variable, tmp_path):
    valid = T0 + np.arange(2) * HOUR
    path = _write(tmp_path / "plev500.nc", {"valid_time": 2, dim: 1}, [
        _time("valid_time", ("valid_time",), valid), (dim, (dim,), np.array([500.0]), dict(attrs)),
        (variable, ("valid_time", dim, "latitude", "longitude"), _fields(np.full((2, 1), 5500 * 9.80665)),
         {"units": "m**2 s**-2" if variable == "z" else "kg kg**-1"})])
    f = GriddedFile.open(path, "era5")
    units = attrs["units"]
    with pytest.raises(ServiceError, match=rf"^plev500\.nc: {variable} is on pressure level 500 {units} \(dimension "
                                           rf"'{dim}'\): only surface \(single-level\) fields are read$"):
        f.read(variable, 0, *ALL)


def test_surface_fields_on_model_levels(tmp_path):
    """z on model level 137 is not the orography: refused; z on model level 1 is how ECMWF archives
    the surface geopotential: read; a 3-D field (t) takes the lowest model level (the largest
    number), as in EAC4's model-level files."""
    valid = np.array([T0])
    path = _write(tmp_path / "ml.nc", {"valid_time": 1, "model_level": 1, "hybrid": 1, "level": 3}, [
        _time("valid_time", ("valid_time",), valid),
        ("model_level", ("model_level",), np.array([137]), {"long_name": "model_level", "units": "1"}),
        ("hybrid", ("hybrid",), np.array([1]), {"long_name": "hybrid level", "units": "1"}),
        ("level", ("level",), np.array([58, 59, 60]), {"long_name": "model_level_number"}),
        ("z", ("valid_time", "model_level", "latitude", "longitude"), _fields([[9000.0]]), {"units": "m**2 s**-2"}),
        ("zs", ("valid_time", "hybrid", "latitude", "longitude"), _fields([[900.0]]), {"units": "m**2 s**-2"}),
        ("t", ("valid_time", "level", "latitude", "longitude"), _fields([[250.0, 260.0, 270.0]]), {"units": "K"})])
    f = GriddedFile.open(path, "era5")
    with pytest.raises(ServiceError, match=r"^ml\.nc: z is on model level 137 \(dimension 'model_level'\): z must be "
                                           r"the surface \(single-level\) field$"):
        f.read("z", 0, *ALL)
    f.variables["z"] = "zs"  # z on model level 1 (cfgrib's 'hybrid')
    assert f.read("z", 0, *ALL) == pytest.approx(np.full((3, 3), 900.0))
    assert f.read("t", 0, *ALL) == pytest.approx(np.full((3, 3), 270.0))


def test_heights_above_the_surface(tmp_path):
    """The CAMS European layout's level in metres: 0 m is the surface; a file of the 500 m level
    only is refused. cfgrib's heightAboveGround of 2 m (t2m) is a surface field."""
    path = _write(tmp_path / "heights.nc", {"time": 1, "level": 1, "heightAboveGround": 1}, [
        _time("time", ("time",), [T0]), ("level", ("level",), np.array([500.0]), {"units": "m", "long_name": "level"}),
        ("heightAboveGround", ("heightAboveGround",), np.array([2.0]), {"units": "m"}),
        ("pm2p5_conc", ("time", "level", "latitude", "longitude"), _fields([[7.0]]), {"units": "µg/m3"}),
        ("t2m", ("time", "heightAboveGround", "latitude", "longitude"), _fields([[281.0]]), {"units": "K"})])
    f = GriddedFile.open(path, "cams_europe")
    assert f.read("t2m", 0, *ALL) == pytest.approx(np.full((3, 3), 281.0))
    with pytest.raises(ServiceError, match=r"^heights\.nc: pm2p5_conc is at 500 m above the surface \(dimension "
                                           r"'level'\): only surface fields \(up to 10 m\) are read$"):
        f.read("pm2p5", 0, *ALL)


def test_a_static_field_on_a_pressure_level_is_refused(tmp_path):
    path = _write(tmp_path / "orog_z500.nc", {"pressure_level": 1}, [
        ("pressure_level", ("pressure_level",), np.array([500.0]), {"units": "hPa"}),
        ("z", ("pressure_level", "latitude", "longitude"), _fields([5500 * 9.80665]), {"units": "m**2 s**-2"})])
    grid = Grid(42.0, 3.0, 0.25, 4, 4)
    with pytest.raises(ServiceError, match=r"^orog_z500\.nc: z is on pressure level 500 hPa \(dimension "
                                           r"'pressure_level'\)"):
        read_static(path, None, grid, "orog_scal", "auto")


# ------------------------------------------------------------------------------------------------
# Legacy ERA5 + ERA5T, missing times


def _legacy_expver(path: Path, both_at_second: bool = False) -> Path:
    """The legacy CDS layout of a request mixing ERA5 (expver 1) and ERA5T (expver 5): t2m(time,
    expver, lat, lon), the first step only in expver 1, the second only in expver 5."""
    fill = -32767.0
    values = np.full((2, 2), fill)
    values[0, 0], values[1, 1] = 281.0, 282.0
    if both_at_second:
        values[1, 0] = 290.0
    return _write(path, {"time": 2, "expver": 2}, [
        ("time", ("time",), np.array([1060680, 1060681]), {"units": "hours since 1900-01-01 00:00:00.0"}),
        ("expver", ("expver",), np.array([1, 5]), {"long_name": "expver"}),
        ("t2m", ("time", "expver", "latitude", "longitude"), _fields(values), {"units": "K", "_FillValue": fill})])


def test_legacy_era5_and_era5t_are_combined_per_time_step(tmp_path):
    f = GriddedFile.open(_legacy_expver(tmp_path / "era5_expver.nc"), "era5")
    np.testing.assert_array_equal(f.times, np.array(["2021-01-01T00", "2021-01-01T01"], "datetime64[s]"))
    assert f.read("t2m", 0, *ALL) == pytest.approx(np.full((3, 3), 281.0))
    assert f.read("t2m", 1, *ALL) == pytest.approx(np.full((3, 3), 282.0))


def test_legacy_era5_and_era5t_both_holding_a_step_is_refused(tmp_path):
    f = GriddedFile.open(_legacy_expver(tmp_path / "era5_expver_both.nc", both_at_second=True), "era5")
    with pytest.raises(ServiceError, match=r"^era5_expver_both\.nc: t2m at 2021-01-01T01:00: 2 of its expver entries "
                                           r"\(1, 5\) hold data; ERA5 and ERA5T"):
        f.read("t2m", 1, *ALL)


def test_a_missing_time_value_names_the_file(tmp_path):
    path = _write(tmp_path / "era5_missing_time.nc", {"valid_time": 2}, [
        _time("valid_time", ("valid_time",), T0 + np.arange(2) * HOUR, _FillValue=np.int64(-1)),
        _t2m(("valid_time",), [1.0, 2.0])])
    with netCDF4.Dataset(path, "a") as ds:
        ds["valid_time"][1] = np.ma.masked
    with pytest.raises(ServiceError, match=r"^era5_missing_time\.nc: its 'valid_time' axis has a missing time value$"):
        GriddedFile.open(path, "era5")


# ------------------------------------------------------------------------------------------------
# aqgan-preproc


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("aq_layouts") / "scene"
    root.mkdir()
    paths = write_scene(make_scene(hours=24, eac4_rows=4, eac4_cols=4, seed=1), root)
    (root / "config.yaml").write_text(scene_config(root, AOI, input_frame=(2, 2), output_frame=(8, 8),
                                                   ensemble_size=4))
    return root, paths


def _preproc(work: Path) -> int:
    return preproc_main(["--start-date", DATES[0], "--end-date", DATES[1], "--dataset", "synthetic",
                         "--config", str(work / "config.yaml")])


def _rewrite_era5(src: Path, dst: Path, layout: str) -> None:
    """The ERA5 file of the scene (grib_to_netcdf layout) in the cfgrib forecast layout (24 h
    forecasts: time = valid time - 24 h, valid_time(time)), or with z on the 500 hPa level."""
    with netCDF4.Dataset(src) as s:
        times = netCDF4.num2date(s["time"][:], s["time"].units, only_use_cftime_datetimes=False,
                                 only_use_python_datetimes=True)
        valid = np.array([np.datetime64(t, "s") for t in times])
        lat, lon = s["latitude"][:], s["longitude"][:]
        fields = {n: (np.ma.filled(s[n][:].astype(np.float64), np.nan), s[n].units) for n in s.variables
                  if s[n].ndim == 3}
    with netCDF4.Dataset(dst, "w") as d:
        d.createDimension("time", valid.size)
        d.createDimension("latitude", lat.size)
        d.createDimension("longitude", lon.size)
        for name, values in (("latitude", lat), ("longitude", lon)):
            d.createVariable(name, "f8", (name,))[:] = values
        t = d.createVariable("time", "i8", ("time",))
        t.units = "seconds since 1970-01-01"
        if layout == "cfgrib forecast":
            t.standard_name, t.long_name = "forecast_reference_time", "initial time of forecast"
            t[:] = _seconds(valid - 24 * HOUR)
            s_ = d.createVariable("step", "i8")
            s_.units, s_.standard_name = "hours", "forecast_period"
            s_[...] = 24
            v = d.createVariable("valid_time", "i8", ("time",))
            v.units, v.standard_name = "seconds since 1970-01-01", "time"
            v[:] = _seconds(valid)
        else:
            t[:] = _seconds(valid)
            d.createDimension("pressure_level", 1)
            p = d.createVariable("pressure_level", "f8", ("pressure_level",))
            p.units = "hPa"
            p[:] = [500.0]
        for name, (values, units) in fields.items():
            dims = ("time", "pressure_level", "latitude", "longitude") if name == "z" and layout == "z500" else \
                ("time", "latitude", "longitude")
            v = d.createVariable(name, "f4", dims)
            v.units = units
            v[:] = values[:, None] if len(dims) == 4 else values


def test_preproc_reads_cfgrib_forecasts_at_their_valid_time(scene, tmp_path, capsys):
    root, paths = scene
    assert _preproc(root) == 0, capsys.readouterr().err
    work = tmp_path / "scene"
    shutil.copytree(root, work, ignore=shutil.ignore_patterns("tiles"))
    (work / "config.yaml").write_text(scene_config(work, AOI, input_frame=(2, 2), output_frame=(8, 8),
                                                   ensemble_size=4))
    for p in paths["era5"]:
        _rewrite_era5(Path(p), work / Path(p).relative_to(root), "cfgrib forecast")
    assert _preproc(work) == 0, capsys.readouterr().err
    [genuine] = list((root / "tiles").rglob("tiles.nc"))
    [forecast] = list((work / "tiles").rglob("tiles.nc"))
    with netCDF4.Dataset(genuine) as a, netCDF4.Dataset(forecast) as b:
        for name in ("lr", "hr", "stat_mean", "stat_std"):
            np.testing.assert_allclose(b[name][:], a[name][:], rtol=1e-4, atol=1e-4, err_msg=name)  # int16 packing


def test_preproc_refuses_a_pressure_level_geopotential(scene, tmp_path, capsys):
    root, paths = scene
    work = tmp_path / "scene"
    shutil.copytree(root, work, ignore=shutil.ignore_patterns("tiles"))
    (work / "config.yaml").write_text(scene_config(work, AOI, input_frame=(2, 2), output_frame=(8, 8),
                                                   ensemble_size=4))
    era5 = work / Path(paths["era5"][0]).relative_to(root)
    _rewrite_era5(Path(paths["era5"][0]), era5, "z500")
    assert_refused(_preproc(work), capsys.readouterr().err, era5.name,
                   "z is on pressure level 500 hPa (dimension 'pressure_level')", work / "tiles")
