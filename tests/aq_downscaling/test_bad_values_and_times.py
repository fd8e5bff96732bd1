"""Field values and time axes that the readers refuse or put right, in the layouts of the genuine
files (EAC4 from grib_to_netcdf, int16-packed; CAMS European float32 netCDF):

* concentrations below ``MIN_CONCENTRATION`` (-1 ug m-3; the real CAMS samples hold no negative
  value at all) and infinite values: one line naming the file, the variable and the value, exit
  status 2, no tiles; small negative concentrations (numerical noise) are read as 0;
* a time axis that runs backwards is read forwards (times and fields together); one that goes
  back and forth is refused, naming the file and the step out of order."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from components.aq_downscaling.cli import preproc_main
from components.aq_downscaling.readers import GriddedFile
from components.common.errors import ServiceError
from tests.aq_downscaling.test_corrupt_inputs import AOI, DATES, assert_refused
from tests.fixtures.cams_products import make_scene, scene_config, write_cams_europe, write_grib_to_netcdf, write_scene

LAT = np.array([42.0, 42.75, 43.5])
LON = np.array([3.0, 3.75, 4.5])
T0 = np.datetime64("2021-01-01T00:00:00")
ALL = (slice(0, LAT.size), slice(0, LON.size))


def _eac4(path: Path, hours, pm2p5: np.ndarray) -> Path:
    times = T0 + np.asarray(hours) * np.timedelta64(1, "h")
    t2m = 280.0 + np.asarray(hours, float)[:, None, None] + np.zeros((1, LAT.size, LON.size))  # told apart too
    return write_grib_to_netcdf(path, times, LAT, LON, {"pm2p5": pm2p5, "t2m": t2m})


def _field(steps: int) -> np.ndarray:
    """PM2.5 in ug m-3 whose every step is told apart by its level (10, 20, 30, ...)."""
    return 10.0 * (1 + np.arange(steps))[:, None, None] + np.arange(LAT.size * LON.size).reshape(LAT.size, LON.size)


# ------------------------------------------------------------------------------------------------
# Values


def test_a_concentration_far_below_zero_is_refused(tmp_path):
    pm = _field(3)
    pm[1, 1, 2] = -1000.0
    f = GriddedFile.open(_eac4(tmp_path / "eac4_negative.nc", [0, 3, 6], pm), "cams_global")
    assert f.read("pm2p5", 0, *ALL)[1, 2] == pytest.approx(pm[0, 1, 2], rel=1e-4)
    with pytest.raises(ServiceError, match=r"^eac4_negative\.nc: pm2p5 is -1000 ug m-3 at 2021-01-01T03:00, below -1 "
                                           r"ug m-3: not a physical concentration$"):
        f.read("pm2p5", 1, *ALL)


def test_small_negative_concentrations_are_read_as_zero(tmp_path):
    pm = _field(2)
    pm[0, 0, 0], pm[0, 2, 1] = -0.2, -0.99  # numerical noise, down to readers.MIN_CONCENTRATION (-1)
    f = GriddedFile.open(_eac4(tmp_path / "eac4_noise.nc", [0, 3], pm), "cams_global")
    got = f.read("pm2p5", 0, *ALL)
    assert got[0, 0] == 0.0 and got[2, 1] == 0.0
    assert got.min() == 0.0 and got[1, 1] == pytest.approx(pm[0, 1, 1], rel=1e-4)


def test_an_infinite_value_is_refused_a_fill_value_is_missing(tmp_path):
    pm = _field(2)
    path = write_cams_europe(tmp_path / "cams_europe_inf.nc", T0.astype(object).date(), np.array([0, 1]), LAT, LON,
                             {"pm2p5": pm, "pm10": pm * 2})
    with netCDF4.Dataset(path, "a") as ds:
        ds["pm2p5_conc"][1, 0, 0, 0] = np.inf  # the file's latitudes are descending: the northern row
        ds["pm10_conc"][1, 0, 0, 0] = np.ma.masked  # the fill value: missing, not refused
    f = GriddedFile.open(path, "cams_europe")
    assert np.isnan(f.read("pm10", 1, *ALL)[2, 0])
    with pytest.raises(ServiceError, match=r"^cams_europe_inf\.nc: pm2p5_conc holds inf at 2021-01-01T01:00"):
        f.read("pm2p5", 1, *ALL)


# ------------------------------------------------------------------------------------------------
# Time axes


def test_a_backwards_time_axis_is_read_forwards(tmp_path):
    pm = _field(4)
    forwards = GriddedFile.open(_eac4(tmp_path / "eac4.nc", [0, 3, 6, 9], pm), "cams_global")
    backwards = GriddedFile.open(_eac4(tmp_path / "eac4_backwards.nc", [9, 6, 3, 0], pm[::-1]), "cams_global")
    np.testing.assert_array_equal(backwards.times, forwards.times)
    assert (np.diff(backwards.times) > np.timedelta64(0, "s")).all()
    for i, when in enumerate(forwards.times):
        assert backwards.time_index(when) == i
        for name in ("pm2p5", "t2m"):
            np.testing.assert_allclose(backwards.read(name, i, *ALL), forwards.read(name, i, *ALL), rtol=1e-4)


def test_a_time_axis_out_of_order_is_refused(tmp_path):
    path = _eac4(tmp_path / "eac4_shuffled.nc", [0, 6, 3, 9], _field(4))
    with pytest.raises(ServiceError, match=r"^eac4_shuffled\.nc: its 'time' axis is not monotonic: 2021-01-01T03:00 "
                                           r"follows 2021-01-01T06:00 \(step 3 of 4\); give the time steps in order$"):
        GriddedFile.open(path, "cams_global")


# ------------------------------------------------------------------------------------------------
# aqgan-preproc (whose tiles are all aqgan-train reads)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("aq_values") / "scene"
    root.mkdir()
    paths = write_scene(make_scene(hours=24, eac4_rows=4, eac4_cols=4, seed=1), root)
    return root, paths


def _europe_copy(scene, tmp_path, value) -> tuple[Path, Path]:
    """A copy of the scene whose first CAMS European file holds ``value`` in one cell of the AoI
    at 06 UTC (a step common to every input)."""
    root, paths = scene
    work = tmp_path / "scene"
    shutil.copytree(root, work)
    europe = work / Path(paths["cams_europe"][0]).relative_to(root)
    with netCDF4.Dataset(europe, "a") as ds:
        i = int(np.argmin(np.abs(ds["latitude"][:] - 42.85)))
        j = int(np.argmin(np.abs(ds["longitude"][:] - 3.85)))
        ds["pm2p5_conc"][6, 0, i, j] = value
    (work / "config.yaml").write_text(scene_config(work, AOI, input_frame=(2, 2), output_frame=(8, 8),
                                                   ensemble_size=4))
    return work, europe


def _preproc(work: Path) -> int:
    return preproc_main(["--start-date", DATES[0], "--end-date", DATES[1], "--dataset", "synthetic",
                         "--config", str(work / "config.yaml")])


@pytest.mark.parametrize("value, problem", [
    (-1000.0, "pm2p5_conc is -1000 ug m-3 at 2021-01-01T06:00, below -1 ug m-3: not a physical concentration"),
    (np.inf, "pm2p5_conc holds inf at 2021-01-01T06:00"),
], ids=["-1000 ug m-3", "infinite"])
def test_preproc_refuses_a_non_physical_target(value, problem, scene, tmp_path, capsys):
    work, europe = _europe_copy(scene, tmp_path, value)
    code = _preproc(work)
    assert_refused(code, capsys.readouterr().err, europe.name, problem, work / "tiles")


def test_preproc_takes_small_negative_targets(scene, tmp_path, capsys):
    work, _ = _europe_copy(scene, tmp_path, -0.3)
    assert _preproc(work) == 0, capsys.readouterr().err
    assert list((work / "tiles").rglob("tiles.nc"))
