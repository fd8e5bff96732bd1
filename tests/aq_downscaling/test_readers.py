"""Readers on the genuine CAMS EAC4 and ERA5 samples of ../shared/data, regridding, and the
fixture writers checked against the genuine files' layout."""

from __future__ import annotations

import datetime as dt

import netCDF4
import numpy as np
import pytest

from components.aq_downscaling.grid import Grid, Regridder, aoi_grids, interpolate
from components.aq_downscaling.readers import GriddedFile, Source, read_static, to_canonical
from components.common.errors import ServiceError
from tests.conftest import sample
from tests.fixtures.cams_products import (make_scene, write_cams_europe, write_grib_to_netcdf, write_scene,
                                          write_static_geotiff)

EAC4_SFC = "cams-eac4-global/97da7a58-674a-4a1f-a92b-534cb95d07bb/levtype_sfc.nc"
EAC4_ML = "cams-eac4-global/97da7a58-674a-4a1f-a92b-534cb95d07bb/levtype_ml.nc"
EAC4_COLUMNS = "cams-eac4-global/232f85b4-b3e9-47a7-a52d-9f955c38b9f6.nc"


def _raw(path, name):
    """Unpacked values straight from netCDF4 (the reference)."""
    with netCDF4.Dataset(path) as ds:
        v = ds[name]
        return np.ma.filled(v[:].astype(np.float64), np.nan), ds["latitude"][:], ds["longitude"][:]


def test_real_eac4_surface_pressure():
    path = sample(EAC4_SFC)
    f = GriddedFile.open(path, "cams_global")
    assert list(f.variables) == ["sp"]
    assert f.times.size == 16
    assert str(f.times[0]) == "2020-07-01T00:00:00" and str(f.times[-1]) == "2020-07-02T21:00:00"
    assert np.allclose(f.lat, [22.0, 22.75, 23.5]) and np.allclose(f.lon, [27.0, 27.75, 28.5])
    raw, lat, _ = _raw(path, "sp")
    window = f.read("sp", 5, slice(0, 3), slice(0, 3))
    assert lat[0] > lat[-1]  # the file is north-up; the reader returns ascending latitude
    np.testing.assert_allclose(window, raw[5][::-1])
    assert 90000 < window.mean() < 110000  # Pa
    # a grid whose cells coincide with the source's: conservative regridding returns the values
    grid = Grid(22.0 - 0.375, 27.0 - 0.375, 0.75, 3, 3)
    src = Source("cams_global", [path])
    np.testing.assert_allclose(src.read("sp", f.times[5], grid, "conservative"), raw[5][::-1], rtol=1e-4)
    # inside the footprint: an AoI grid of 0.8° cells (0.1 x 8)
    lr, hr = aoi_grids(22.0, 23.6, 27.0, 28.6, 0.1, 8)
    values = src.read("sp", f.times[5], lr, "auto")
    assert values.shape == (2, 2) and np.isfinite(values).all()
    assert raw[5].min() - 1 <= values.min() and values.max() <= raw[5].max() + 1


def test_real_eac4_model_levels_take_the_lowest_level():
    path = sample(EAC4_ML)
    f = GriddedFile.open(path, "cams_global")
    assert set(f.variables) == {"go3", "q", "t"}
    window = f.read("t", 0, slice(0, 3), slice(0, 3))
    with netCDF4.Dataset(path) as ds:
        levels = ds["level"][:]
        surface = np.ma.filled(ds["t"][0, int(np.argmax(levels))].astype(np.float64), np.nan)[::-1]
    assert levels.max() == 60
    np.testing.assert_allclose(window, surface)
    assert 280 < window.mean() < 330  # K near the surface in July over Egypt


def test_real_eac4_total_columns_open():
    f = GriddedFile.open(sample(EAC4_COLUMNS), "cams_global")
    assert set(f.variables) == {"gtco3", "tcwv"}
    assert np.isfinite(f.read("tcwv", 0, slice(0, 3), slice(0, 3))).all()


def test_real_era5_grib_to_netcdf_global_0_360():
    path = sample("era5-netcdf/era5_2t_1.nc")
    f = GriddedFile.open(path, "era5")
    assert str(f.times[0]) == "2021-03-01T12:00:00"
    assert f.lon[0] == -180 and f.lon[-1] == 160 and np.all(np.diff(f.lon) > 0)  # 0..340 in the file
    assert f.lat[0] == -80 and f.lat[-1] == 80
    t2m = f.read("t2m", 0, slice(0, 9), slice(0, 18))
    raw, lat, lon = _raw(path, "t2m")
    # longitude 0 is column 9 after sorting -180..160
    np.testing.assert_allclose(t2m[:, 9], raw[0][::-1, 0])
    np.testing.assert_allclose(t2m[:, 0], raw[0][::-1, 9])  # 180° E
    assert 200 < t2m.min() and t2m.max() < 320


def test_real_era5_cfgrib_layout():
    path = sample("era5-netcdf/era5.nc")
    f = GriddedFile.open(path, "era5")
    assert str(f.times[0]) == "2017-01-01T12:00:00" and f.times.size == 1
    assert f.lat[0] == -90 and f.lon[0] == -180
    # Rome's box on the 0.25° grid, conservatively to 0.5°
    grid = Grid(41.0, 12.0, 0.5, 2, 2)
    src = Source("era5", [path])
    values = src.read("t2m", f.times[0], grid, "conservative")
    with netCDF4.Dataset(path) as ds:
        lat, lon = ds["lat"][:], ds["lon"][:]
        i = np.nonzero((lat > 41.0) & (lat < 42.0))[0]
        j = np.nonzero((lon > 12.0) & (lon < 13.0))[0]
        assert ds["t2m"][i[0], j[0]] > 250
    assert values.shape == (2, 2) and 260 < values.mean() < 295


def test_source_outside_the_aoi_is_one_clear_error():
    src = Source("cams_global", [sample(EAC4_SFC)])
    lr, _ = aoi_grids(45.0, 46.6, 8.0, 9.6, 0.1, 8)
    with pytest.raises(ServiceError, match="does not cover the AoI grid: it spans lat 21.625..23.875"):
        src.read("sp", np.datetime64("2020-07-01T00:00:00"), lr, "auto")


def test_units_are_converted():
    assert to_canonical("pm2p5", "kg m**-3", np.array([2.5e-8]), "f")[0] == pytest.approx(25.0)
    assert to_canonical("pm2p5", "µg/m3", np.array([25.0]), "f")[0] == 25.0
    assert to_canonical("sp", "hPa", np.array([1013.25]), "f")[0] == pytest.approx(101325)
    assert to_canonical("t2m", "degC", np.array([0.0]), "f")[0] == pytest.approx(273.15)
    assert to_canonical("t2m", "degree_Celsius", np.array([0.0]), "f")[0] == pytest.approx(273.15)  # CF's spelling
    with pytest.raises(ServiceError, match="units 'ppb' of pm2p5"):
        to_canonical("pm2p5", "ppb", np.array([1.0]), "f")


def test_regridding_conserves_means_and_interpolates_linear_fields_exactly():
    rng = np.random.default_rng(1)
    fine = Grid(40.0, 0.0, 0.1, 40, 40)
    coarse = Grid(40.0, 0.0, 0.8, 5, 5)
    values = rng.random((40, 40))
    rg = Regridder(fine.lat, fine.lon, coarse, "conservative")
    out = rg(values[rg.rows, rg.cols])
    # each coarse cell is the area-weighted (sin latitude) mean of its 8 x 8 fine cells
    w = np.diff(np.sin(np.deg2rad(fine.lat_edges)))[:8]
    expect = (values[:8, :8] * w[:, None]).sum() / (w.sum() * 8)
    assert out[0, 0] == pytest.approx(expect)
    # bilinear interpolation of a linear field is exact inside the source's centre range
    lin = 3 * coarse.lat[:, None] + 2 * coarse.lon[None, :]
    target = Grid(40.4, 0.4, 0.1, 32, 32)
    got = interpolate(lin, coarse, target, "bilinear")
    np.testing.assert_allclose(got, 3 * target.lat[:, None] + 2 * target.lon[None, :])
    # NaN cells are left out and weights renormalised
    holes = values.copy()
    holes[0, 0] = np.nan
    assert np.isfinite(rg(holes[rg.rows, rg.cols])).all()


def test_aoi_grids_are_aligned_on_the_cams_european_grid():
    lr, hr = aoi_grids(44.03, 50.4, 5.0, 11.37, 0.1, 8)
    assert (lr.south, lr.west, lr.res, lr.rows, lr.cols) == (44.0, 5.0, 0.8, 8, 8)
    assert (hr.rows, hr.cols, hr.res) == (64, 64, 0.1)
    assert hr.lat[0] == pytest.approx(44.05)


# ------------------------------------------------------------------------------------------------
# The fixture writers reproduce the genuine layouts


def _layout(path):
    with netCDF4.Dataset(path) as ds:
        return {"format": ds.data_model, "global": list(ds.ncattrs()), "dims": list(ds.dimensions),
                "vars": {n: (str(v.dtype), v.dimensions, list(v.ncattrs())) for n, v in ds.variables.items()},
                "Conventions": getattr(ds, "Conventions", None),
                "time_units": ds["time"].units, "calendar": getattr(ds["time"], "calendar", None),
                "lat_desc": bool(ds["latitude"][0] > ds["latitude"][-1]),
                "lon_min": float(ds["longitude"][:].min())}


def test_eac4_writer_matches_the_genuine_layout(tmp_path):
    real = _layout(sample(EAC4_SFC))
    times = np.array(["2020-07-01T00", "2020-07-01T03"], "datetime64[s]")
    lat, lon = np.array([22.0, 22.75, 23.5]), np.array([27.0, 27.75, 28.5])
    sp = 95000 + 100 * np.random.default_rng(0).random((2, 3, 3))
    ours = _layout(write_grib_to_netcdf(tmp_path / "sp.nc", times, lat, lon, {"sp": sp}))
    assert ours["format"] == real["format"] == "NETCDF3_64BIT_OFFSET"
    assert ours["global"] == real["global"] and ours["Conventions"] == real["Conventions"]
    assert ours["dims"] == real["dims"]
    assert ours["vars"] == real["vars"]
    assert (ours["time_units"], ours["calendar"], ours["lat_desc"]) == \
        (real["time_units"], real["calendar"], real["lat_desc"])
    with netCDF4.Dataset(sample(EAC4_SFC)) as r, netCDF4.Dataset(tmp_path / "sp.nc") as o:
        for attr in ("units", "long_name", "standard_name", "_FillValue", "missing_value"):
            assert getattr(o["sp"], attr) == getattr(r["sp"], attr)
        r["sp"].set_auto_maskandscale(False)
        o["sp"].set_auto_maskandscale(False)
        # grib_to_netcdf packing: the extremes map to -32766 and 32767
        assert (r["sp"][:].min(), r["sp"][:].max()) == (o["sp"][:].min(), o["sp"][:].max()) == (-32766, 32767)
    back = GriddedFile.open(tmp_path / "sp.nc", "cams_global").read("sp", 1, slice(0, 3), slice(0, 3))
    np.testing.assert_allclose(back, sp[1], atol=100 / 65533 * 1.01)


def test_era5_writer_matches_the_genuine_layout(tmp_path):
    real = _layout(sample("era5-netcdf/era5_2t_1.nc"))
    lat, lon = np.arange(-80, 81, 20.0), np.arange(-180, 180, 20.0)
    ours = _layout(write_grib_to_netcdf(tmp_path / "t.nc", np.array(["2021-03-01T12"], "datetime64[s]"), lat, lon,
                                        {"t2m": 270 + np.zeros((1, lat.size, lon.size)) + lat[:, None] / 10}))
    assert ours == real


def test_pm_is_written_in_ecmwf_units_and_read_back_in_ug_m3(tmp_path):
    times = np.array(["2021-01-01T00"], "datetime64[s]")
    pm = np.array([[[5.0, 50.0], [12.5, 30.0]]])
    path = write_grib_to_netcdf(tmp_path / "pm.nc", times, np.array([42.0, 42.75]), np.array([3.0, 3.75]), {"pm2p5": pm})
    with netCDF4.Dataset(path) as ds:
        assert ds["pm2p5"].units == "kg m**-3" and ds["pm2p5"].dtype == np.int16
        assert ds["pm2p5"][:].max() == pytest.approx(5e-8, rel=1e-4)
    back = GriddedFile.open(path, "cams_global").read("pm2p5", 0, slice(0, 2), slice(0, 2))
    np.testing.assert_allclose(back, pm[0], rtol=1e-4)


@pytest.mark.parametrize("kind", ["ANALYSIS", "FORECAST"])
def test_cams_europe_layout_is_read(tmp_path, kind):
    lat = np.round(np.arange(30.05, 30.5, 0.1), 2)
    lon = np.round(np.arange(-0.25, 0.3, 0.1), 2)  # straddles 0°: written 359.75 ... 0.25
    pm = np.arange(2 * lat.size * lon.size, dtype=float).reshape(2, lat.size, lon.size)
    path = write_cams_europe(tmp_path / "eu.nc", dt.date(2021, 12, 22), np.array([0, 1]), lat, lon, {"pm2p5": pm},
                             kind=kind)
    with netCDF4.Dataset(path) as ds:
        assert list(ds.dimensions) == ["longitude", "latitude", "level", "time"]
        assert ds["time"].units == "hours" and ds["time"].long_name == f"{kind} time from 20211222"
        assert getattr(ds, kind) == "Europe, 20211222+[0H_1H]"
        assert ds["pm2p5_conc"].units == "µg/m3"
        assert ds["pm2p5_conc"].dimensions == ("time", "level", "latitude", "longitude")
        assert ds["longitude"][0] > 300 and ds["latitude"][0] > ds["latitude"][-1]
    f = GriddedFile.open(path, "cams_europe")
    assert list(f.variables) == ["pm2p5"]
    assert [str(t) for t in f.times] == ["2021-12-22T00:00:00", "2021-12-22T01:00:00"]
    np.testing.assert_allclose(f.lon, lon, atol=1e-5)
    np.testing.assert_allclose(f.read("pm2p5", 1, slice(0, lat.size), slice(0, lon.size)), pm[1])


def test_scene_products_agree_and_static_files_are_read(tmp_path):
    scene = make_scene(hours=6, eac4_rows=3, eac4_cols=3, seed=3)
    paths = write_scene(scene, tmp_path)
    hr = Grid(42.0, 3.0, 0.1, 8, 8)
    europe = Source("cams_europe", paths["cams_europe"])
    truth = europe.read("pm2p5", scene.times[3], hr, "auto")
    i0 = int(np.argmin(np.abs(scene.hr_lat - hr.lat[0])))
    j0 = int(np.argmin(np.abs(scene.hr_lon - hr.lon[0])))
    np.testing.assert_allclose(truth, scene.hr["pm2p5"][3, i0:i0 + 8, j0:j0 + 8], rtol=1e-5)
    assert 1 < truth.mean() < 100  # µg m-3
    # EAC4 (0.75°) is the area mean of the 0.1° truth, within its 5 % model error
    eac4 = Source("cams_global", paths["cams_global"]).read("pm2p5", scene.times[3], Grid(41.625, 2.625, 0.75, 3, 3),
                                                          "conservative")
    assert np.all(np.abs(np.log(eac4 / scene.eac4["pm2p5"][3])) < 1e-3)
    orog = read_static(paths["orography"], None, hr, "orog_scal", "auto")
    np.testing.assert_allclose(orog, scene.orography[i0:i0 + 8, j0:j0 + 8], atol=0.6)
    urban = read_static(paths["urban_frac"], None, hr, "urban_frac", "auto")
    # the reader weights by cell area (sin latitude), the fixture averages plainly
    np.testing.assert_allclose(urban, scene.urban_frac[i0:i0 + 8, j0:j0 + 8], rtol=2e-3, atol=1e-5)


def test_static_geotiff_not_covering_the_aoi(tmp_path):
    p = write_static_geotiff(tmp_path / "dem.tif", 10.0, 10.0, 0.05, np.ones((4, 4)) * 100)
    values = read_static(p, None, Grid(42.0, 3.0, 0.1, 4, 4), "orog_scal", "auto")
    assert np.isnan(values).all()
