"""The real CAMS European PM2.5 forecast (GRIB2, ../shared/data/cams-europe-pm25-forecast-grib)
through the aqgan readers and services: the reader's grid, steps, members and units on the whole
file; a small crop of it (18 x 20 cells, 12 of its messages in the file's own order, rewritten as
GRIB2 by GDAL with the original identification and product definition) degraded to 0.4° and
downscaled end to end; damaged GRIB files as one line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import rasterio
import yaml
from rasterio.windows import Window

from components.aq_downscaling.cli import generate_main, preproc_main, train_main
from components.aq_downscaling.config import load_config
from components.aq_downscaling.degrade import write_degraded, write_land_fraction
from components.aq_downscaling.grid import Grid, aoi_grids
from components.aq_downscaling.readers import GribFile, open_gridded
from components.aq_downscaling.service import run_evaluate
from components.common.errors import ServiceError
from tests.aq_downscaling.test_corrupt_inputs import assert_refused
from tests.conftest import sample

GRIB = "cams-europe-pm25-forecast-grib/example.grib"
# The crop: rows 20..37, columns 30..49 of the file = lat 51.4..53.2 N, lon 3.3..1.3 W (Wales and
# the English Midlands); the AoI inside it is 16 x 16 cells of 0.1°, 4 x 4 of 0.4°.
CROP = (20, 30, 18, 20)
AOI = (51.5, 53.1, -3.2, -1.6)
MESSAGES = range(1, 13)  # steps 0, 1, 10, 11, ..., 19 h: the file is not in step order
TRAIN = ("2020060800", "2020060815")
TEST = ("2020060816", "2020060819")


def write_crop(src: Path, dst: Path, messages=MESSAGES, window=CROP, constituent: int | None = None,
               members: tuple = ()) -> None:
    """Messages of ``src`` cut to ``window`` (row, col, rows, cols), each rewritten by GDAL with
    its identification section and product definition template (its constituent type replaced by
    ``constituent`` when given), then concatenated. With ``members``, each message is written once
    per member number as an ensemble member (template 4.41: 4.40 + type 3, number, 10 members)."""
    row, col, rows, cols = window
    parts = []
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(src) as ds:
        w = Window(col, row, cols, rows)
        for band in messages:
            tags = ds.tags(band)
            template = tags["GRIB_PDS_TEMPLATE_ASSEMBLED_VALUES"].split()
            if constituent is not None:
                template[2] = str(constituent)
            for member in members or (None,):
                pdtn, values = (tags["GRIB_PDS_PDTN"], template) if member is None else \
                    ("41", template + ["3", str(member), "10"])
                part = dst.with_name(f"{dst.name}.{band}.part")
                with rasterio.open(part, "w", driver="GRIB", width=cols, height=rows, count=1, dtype="float64",
                                   crs=ds.crs, transform=ds.window_transform(w), DISCIPLINE="0",
                                   IDS=tags["GRIB_IDS"], PDS_PDTN=pdtn, PDS_TEMPLATE_ASSEMBLED_VALUES=" ".join(values),
                                   DATA_ENCODING="SIMPLE_PACKING", NBITS=24) as out:
                    out.write(ds.read(band, window=w), 1)
                parts.append(part.read_bytes())
                part.unlink()
    dst.write_bytes(b"".join(parts))


@pytest.fixture(scope="module")
def crop(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("grib") / "cams_europe_pm25_crop.grib2"
    write_crop(sample(GRIB), path)
    return path


def test_real_file_grid_steps_members_units():
    f = open_gridded(sample(GRIB), "cams_europe")
    assert isinstance(f, GribFile) and list(f.variables) == ["pm2p5"]
    assert (f.lat.size, f.lon.size) == (65, 98)
    assert np.allclose(f.lat[[0, -1]], [48.75, 55.15]) and np.allclose(np.diff(f.lat), 0.1)
    assert np.allclose(f.lon[[0, -1]], [-6.25, 3.45]) and np.allclose(np.diff(f.lon), 0.1)
    assert str(f.reference_time) == "2020-06-08T00:00:00"
    hours = (f.times - f.reference_time).astype("timedelta64[h]").astype(int)
    assert hours.tolist() == list(range(73))
    with rasterio.open(sample(GRIB)) as ds:  # the valid times GDAL computes agree (template 4.40)
        gdal_valid = sorted(int(ds.tags(b)["GRIB_VALID_TIME"]) for b in range(1, 74))
    assert f.times.astype("datetime64[s]").astype(int).tolist() == gdal_valid
    assert f.members == ()  # template 4.40: one field per step (the ensemble median), no members
    assert f.units["pm2p5"] == "kg/m^3"
    with rasterio.open(sample(GRIB)) as ds:  # GDAL: north-up, messages in file order
        band = next(b for b in range(1, 74) if ds.tags(b)["GRIB_FORECAST_SECONDS"] == str(72 * 3600))
        raw = ds.read(band)
    ug = f.read("pm2p5", 72, slice(0, 65), slice(0, 98))
    assert np.allclose(ug, raw[::-1] * 1e9)  # kg m-3 -> µg m-3, rows south to north
    assert 1.0 < ug.min() and ug.max() < 20.0


def test_crop_reader(crop):
    f = open_gridded(crop, "cams_europe")
    assert np.allclose(f.lat[[0, -1]], [51.45, 53.15]) and np.allclose(f.lon[[0, -1]], [-3.25, -1.35])
    assert f.times.tolist() == [np.datetime64(f"2020-06-08T{h:02d}:00:00") for h in [0, 1, *range(10, 20)]]
    whole = open_gridded(sample(GRIB), "cams_europe")
    rows = slice(65 - CROP[0] - CROP[2], 65 - CROP[0])
    cols = slice(CROP[1], CROP[1] + CROP[3])
    for i, hour in ((0, 0), (5, 13)):
        assert np.allclose(f.read("pm2p5", i, slice(None), slice(None)), whole.read("pm2p5", hour, rows, cols),
                           atol=1e-3)


def test_ensemble_members(tmp_path):
    one = tmp_path / "member2.grib2"
    write_crop(sample(GRIB), one, messages=[2], members=(2,))  # step 1 h as member 2
    f = open_gridded(one, "cams_europe")
    assert f.members == (2,) and f.times.tolist() == [np.datetime64("2020-06-08T01:00:00")]
    two = tmp_path / "members.grib2"
    write_crop(sample(GRIB), two, messages=[2], members=(1, 2))
    with pytest.raises(ServiceError, match="members.grib2: several ensemble members of pm2p5 valid at "
                                           "2020-06-08T01:00 \\(messages 1 and 2\\)"):
        open_gridded(two, "cams_europe")


def test_land_fraction(tmp_path):
    london = write_land_fraction(tmp_path / "l.tif", Grid(51.4, -0.2, 0.1, 1, 1))
    north_sea = write_land_fraction(tmp_path / "s.tif", Grid(53.4, 2.4, 0.1, 1, 1))
    assert london > 0.99 and north_sea < 0.01


def _config(root: Path, crop: Path) -> Path:
    cfg = {
        "model": {"input_frame": [2, 2], "output_frame": [8, 8], "generator_filters": 8,
                  "discriminator_filters": 8, "residual_blocks": 1, "noise_channels": 2},
        "aoi": dict(zip(("lat_min", "lat_max", "lon_min", "lon_max"), AOI)),
        "inputs": {"low_res": ["pm2p5"], "high_res_static": ["land_frac"]},
        "outputs": {"high_res": ["pm2p5"], "ensemble_size": 4, "quantiles": [0.1, 0.5, 0.9],
                    "points": [{"name": "Birmingham", "lat": 52.486, "lon": -1.89}]},
        "training": {"learning_rate": 1e-3, "batch_size": 16, "epochs": 1, "critic_steps": 1, "content_members": 2,
                     "device": "cpu"},
        "paths": {"tiles": str(root / "tiles"), "models": str(root / "models"), "output": str(root / "output"),
                  "datasets": {"real": {"cams_global": [str(root / "pm2p5_degraded.nc")],
                                        "cams_europe": [str(crop)],
                                        "static": {"land_frac": str(root / "land_frac.tif")}}}},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_degrade_and_downscale_end_to_end(crop, tmp_path, caplog):
    lr_grid, hr_grid = aoi_grids(*AOI, 0.1, 4)
    summary = write_degraded(crop, tmp_path / "pm2p5_degraded.nc", hr_grid, 4)
    assert summary["grid"] == lr_grid.as_dict() and summary["time_steps"] == 12
    f = open_gridded(crop, "cams_europe")
    truth = np.stack([f.read("pm2p5", i, slice(1, 17), slice(1, 17)) for i in range(12)])  # the AoI's cells
    degraded = open_gridded(tmp_path / "pm2p5_degraded.nc", "cams_global")
    assert degraded.times.tolist() == f.times.tolist()
    lr = np.stack([degraded.read("pm2p5", i, slice(0, 4), slice(0, 4)) for i in range(12)])
    assert np.allclose(lr, truth.reshape(12, 4, 4, 4, 4).mean(axis=(2, 4)), rtol=2e-3)  # area weights
    write_land_fraction(tmp_path / "land_frac.tif", hr_grid)
    config = _config(tmp_path, crop)
    common = ["--dataset", "real", "--config", str(config)]
    assert preproc_main(["--start-date", TRAIN[0], "--end-date", TRAIN[1], *common]) == 0
    short = [r for r in caplog.records if r.levelname == "WARNING" and "training targets span" in r.getMessage()]
    assert len(short) == 1 and "span 0.6 days (8 time steps), less than 30" in short[0].getMessage()
    assert train_main(["--model", "srgan", "--start-date", TRAIN[0], "--end-date", TRAIN[1], *common]) == 0
    assert generate_main(["--model", "srgan", "--start-date", TEST[0], "--end-date", TEST[1], *common]) == 0
    product = tmp_path / "output" / f"aqgan_real_{TEST[0]}_{TEST[1]}.nc"
    with netCDF4.Dataset(product) as ds:
        ens = ds["pm2p5"][:]
        assert ens.shape == (4, 4, 16, 16) and ds["pm2p5"].units == "ug m-3"
        assert np.allclose(ds["lat"][[0, -1]], [51.55, 53.05]) and np.allclose(ds["lon"][[0, -1]], [-3.15, -1.65])
    assert np.isfinite(ens).all() and 0.5 * truth.min() < ens.mean() < 2 * truth.max()
    ev = run_evaluate(load_config(config), "real", str(product), str(tmp_path / "evaluation"))
    s = ev.metrics
    assert s["time_steps"] == 4 and s["members"] == 4
    assert np.isclose(s["truth_mean"], truth[-4:].mean())  # the GRIB truth in µg m-3 on the product grid
    assert 0 < s["bilinear_mae"] < truth.std() and 0 < s["crps"] and sum(s["rank_histogram"]) == 4 * 256


def test_no_warning_for_a_month_of_targets(caplog):
    from components.aq_downscaling.data import _warn_short_record

    start = np.datetime64("2020-06-01T00:00:00")
    _warn_short_record("real", start + np.arange(0, 24 * 31, 3).astype("timedelta64[h]"))
    assert not caplog.records
    _warn_short_record("real", start + np.arange(0, 24 * 29, 3).astype("timedelta64[h]"))
    assert "span 28.9 days (232 time steps)" in caplog.records[0].getMessage()


def _cut(data: bytes) -> bytes:
    return data[: int(len(data) * 0.6)]


def _bad_end(data: bytes) -> bytes:
    return data[:-1] + b"X"


def _trailing(data: bytes) -> bytes:
    return data + b"\0" * 10


def _grid_section(data: bytes) -> bytes:
    # bytes of the first message's grid definition (section 3, after sections 0 and 1) overwritten
    s3 = 16 + int.from_bytes(data[16:20], "big")
    return data[:s3 + 40] + b"\xff" * 8 + data[s3 + 48:]


def _duplicate(data: bytes) -> bytes:
    first = int.from_bytes(data[8:16], "big")
    return data + data[:first]


CASES = [
    ("GRIB cut short", _cut, "truncated GRIB file"),
    ("end marker damaged", _bad_end, "does not end with 7777"),
    ("trailing bytes", _trailing, "no GRIB message at byte"),
    ("grid section damaged", _grid_section, "corrupt GRIB file: impossible grid"),
    ("a step twice", _duplicate, "several fields of pm2p5 valid at 2020-06-08T00:00"),
]


@pytest.mark.parametrize("case_id, corrupt, problem", CASES, ids=[c[0] for c in CASES])
def test_damaged_grib(case_id, corrupt, problem, crop, tmp_path, capsys):
    damaged = tmp_path / crop.name
    damaged.write_bytes(corrupt(crop.read_bytes()))
    _, hr_grid = aoi_grids(*AOI, 0.1, 4)
    write_degraded(crop, tmp_path / "pm2p5_degraded.nc", hr_grid, 4)
    write_land_fraction(tmp_path / "land_frac.tif", hr_grid)
    config = _config(tmp_path, damaged)
    code = preproc_main(["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--dataset", "real",
                         "--config", str(config)])
    assert_refused(code, capsys.readouterr().err, damaged.name, problem, tmp_path / "tiles")


def test_other_constituent_refused(tmp_path):
    ozone = tmp_path / "ozone.grib2"
    write_crop(sample(GRIB), ozone, messages=range(1, 3), constituent=0)  # 0: ozone in WMO table 4.230
    with pytest.raises(ServiceError, match="ozone.grib2: GRIB message 1 holds constituent type 0, which is not read"):
        open_gridded(ozone, "cams_europe")


def test_degrade_refuses_damaged_grib(crop, tmp_path):
    damaged = tmp_path / "cut.grib2"
    damaged.write_bytes(_cut(crop.read_bytes()))
    _, hr_grid = aoi_grids(*AOI, 0.1, 4)
    with pytest.raises(ServiceError, match="truncated GRIB file"):
        write_degraded(damaged, tmp_path / "out.nc", hr_grid, 4)
    assert not (tmp_path / "out.nc").exists()


def test_grib_edition_1_refused(tmp_path):
    old = tmp_path / "old.grb"
    old.write_bytes(b"GRIB" + (64).to_bytes(3, "big") + b"\x01" + b"\0" * 52 + b"7777")
    with pytest.raises(ServiceError, match="old.grb: GRIB edition 1 is not supported \\(only GRIB2\\)"):
        open_gridded(old, "cams_europe")
