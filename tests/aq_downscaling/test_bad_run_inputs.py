"""What a user can get wrong around aqgan-predict, -generate, -train and -preproc beyond damaged files:
an EAC4 netCDF without any time step, with its times out of order (refused) or backwards
(read forwards), or with -1000 ug m-3 of PM2.5, a seed beyond 64 bits (torch cannot take it), an
ensemble larger than the configuration allows, an --output that is the input file, a static input
that is a folder. Each: exit status 2, one line naming the problem, nothing written, the input
untouched.

The model is trained once for the module the cheap way of the end-to-end test (synthetic scene,
tiny generator, one epoch)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

from components.aq_downscaling.cli import generate_main, predict_main, preproc_main, train_main
from components.aq_downscaling.params import PredictParams
from components.common.errors import InvalidParameter
from tests.aq_downscaling.test_bad_models import TRAIN, trained  # noqa: F401  (a trained model, a fixture)

pytestmark = pytest.mark.xdist_group("aq_bad_run_inputs")

BEYOND_64_BITS = str(2 ** 64)


def _fails(main, argv, capsys) -> str:
    """The one error line of a command that must exit with status 2."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_netcdf_without_time_steps(trained, tmp_path, capsys):
    empty = tmp_path / "eac4_no_time.nc"
    with xr.open_dataset(trained["eac4"], decode_times=False) as ds:
        ds.isel(time=slice(0, 0)).to_netcdf(empty)
    out = tmp_path / "out"
    line = _fails(predict_main, [str(empty), "--model-file", str(trained["model"]), "--output", str(out / "o.nc")],
                  capsys)
    assert "aqgan-predict: error: eac4_no_time.nc holds no time step: its 'time' axis is empty" in line, line
    assert not out.exists()



def test_netcdf_with_a_repeated_time(trained, tmp_path, capsys):
    repeated = tmp_path / "eac4_repeated.nc"
    with xr.open_dataset(trained["eac4"], decode_times=False) as ds:
        twice = ds.isel(time=[0, 1, 1, 2])
        twice.to_netcdf(repeated)
        second = xr.decode_cf(ds.isel(time=[1])).time.values[0]
    out = tmp_path / "out"
    line = _fails(predict_main, [str(repeated), "--model-file", str(trained["model"]), "--output", str(out / "o.nc")],
                  capsys)
    assert f"aqgan-predict: error: eac4_repeated.nc: time {np.datetime64(second, 's')} appears 2 times" in line, line
    assert not out.exists()


def test_netcdf_with_times_out_of_order(trained, tmp_path, capsys):
    shuffled = tmp_path / "eac4_shuffled.nc"
    with xr.open_dataset(trained["eac4"], decode_times=False) as ds:
        ds.isel(time=[0, 2, 1, 3]).to_netcdf(shuffled)
        t1, t2 = (str(np.datetime64(t, "s"))[:16] for t in xr.decode_cf(ds.isel(time=[1, 2])).time.values)
    out = tmp_path / "out"
    line = _fails(predict_main, [str(shuffled), "--model-file", str(trained["model"]), "--output", str(out / "o.nc")],
                  capsys)
    assert f"aqgan-predict: error: eac4_shuffled.nc: its 'time' axis is not monotonic: {t1} follows {t2} (step 3 " \
           "of" in line, line
    assert not out.exists()


def test_netcdf_with_a_backwards_time_axis(trained, tmp_path):
    """Latest step first: read forwards, the same product as from the file in order."""
    backwards = tmp_path / "eac4_backwards.nc"
    with xr.open_dataset(trained["eac4"], decode_times=False) as ds:
        ds.isel(time=slice(None, None, -1)).to_netcdf(backwards)
    products = {}
    for name, src in (("forwards", trained["eac4"]), ("backwards", backwards)):
        out = tmp_path / f"{name}_aqgan.nc"
        assert predict_main([str(src), "--model-file", str(trained["model"]), "--output", str(out), "--seed", "3"]) == 0
        with xr.open_dataset(out) as product:
            products[name] = product.load()
    assert products["backwards"].time.size > 1 and (products["backwards"].time.diff("time") > np.timedelta64(0)).all()
    xr.testing.assert_allclose(products["backwards"], products["forwards"])


def test_netcdf_with_a_non_physical_concentration(trained, tmp_path, capsys):
    import netCDF4

    from tests.fixtures.cams_products import pack_int16

    bad = tmp_path / "eac4_negative.nc"
    shutil.copy(trained["eac4"], bad)
    with netCDF4.Dataset(bad, "a") as ds:  # packed again as grib_to_netcdf packs: -1000 ug m-3 at step 2
        var = ds["pm2p5"]
        values = np.ma.filled(var[:].astype(np.float64), np.nan)
        values[1] = -1000e-9  # kg m-3
        packed, var.scale_factor, var.add_offset = pack_int16(values)
        var.set_auto_maskandscale(False)
        var[:] = packed
    with xr.open_dataset(trained["eac4"]) as ds:
        when = str(ds.time.values[1].astype("datetime64[s]"))[:16]
    out = tmp_path / "out"
    line = _fails(predict_main, [str(bad), "--model-file", str(trained["model"]), "--output", str(out / "o.nc")],
                  capsys)
    assert f"aqgan-predict: error: eac4_negative.nc: pm2p5 is -1000 ug m-3 at {when}, below -1 ug m-3: not a " \
           "physical concentration" in line, line
    assert not out.exists()

@pytest.mark.parametrize("command, flag, value, allowed", [
    ("predict", "--seed", BEYOND_64_BITS, "allowed an integer 0..9223372036854775807"),
    ("predict", "--seed", "-1", "allowed an integer 0..9223372036854775807"),
    ("generate", "--seed", BEYOND_64_BITS, "allowed an integer 0..9223372036854775807"),
    ("predict", "--members", "1001", "allowed an integer 1..1000"),
    ("generate", "--members", "1000000000", "allowed an integer 1..1000"),
])
def test_seed_and_members_flags(command, flag, value, allowed, trained, tmp_path, capsys):
    out = tmp_path / "out"
    if command == "predict":
        line = _fails(predict_main, [str(trained["eac4"]), "--model-file", str(trained["model"]), "--output",
                                     str(out / "o.nc"), flag, value], capsys)
    else:
        line = _fails(generate_main, ["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--config",
                                      str(trained["config"]), "--outdir", str(out), flag, value], capsys)
    assert f"argument {flag}: invalid value '{value}': {allowed}" in line, line
    assert not out.exists()


def test_training_seed_beyond_64_bits(trained, tmp_path, capsys):
    models = tmp_path / "models"
    line = _fails(train_main, ["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--config", str(trained["config"]),
                               "--set", f"training.seed={BEYOND_64_BITS}", "--models", str(models)], capsys)
    assert f"invalid value {BEYOND_64_BITS} for parameter 'training.seed': allowed an integer >= 0 and <= " \
           "9223372036854775807" in line, line
    assert not models.exists()


def test_declared_parameters_have_the_same_bounds():
    with pytest.raises(InvalidParameter, match="'members'"):
        PredictParams(members=1001)
    with pytest.raises(InvalidParameter, match="'seed'"):
        PredictParams(seed=-1)


@pytest.mark.parametrize("spelling", ["same path", "another spelling"])
def test_output_that_is_the_input_file(spelling, trained, tmp_path, capsys):
    given = tmp_path / "in" / "eac4.nc"
    given.parent.mkdir()
    shutil.copy(trained["eac4"], given)
    before = given.read_bytes()
    output = given if spelling == "same path" else tmp_path / "in" / ".." / "in" / "eac4.nc"
    line = _fails(predict_main, [str(given), "--model-file", str(trained["model"]), "--output", str(output)], capsys)
    assert f"--output {output} is the input FILE: writing there would replace it" in line, line
    assert given.read_bytes() == before
    assert sorted(p.name for p in given.parent.iterdir()) == ["eac4.nc"]


def test_static_input_that_is_a_folder(trained, tmp_path, capsys):
    folder = tmp_path / "static_folder"
    folder.mkdir()
    static = str(trained["static"]["orography"])
    config = tmp_path / "config.yaml"
    config.write_text(trained["config"].read_text().replace(static, str(folder)))
    assert str(folder) in config.read_text()
    out = tmp_path / "tiles"
    line = _fails(preproc_main, ["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--config", str(config),
                                 "--outdir", str(out)], capsys)
    assert f"{folder} is a folder: give one netCDF or GeoTIFF file" in line, line
    assert not out.exists() or not any(out.rglob("*"))
