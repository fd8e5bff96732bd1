"""A tiny end-to-end run on CPU through the real commands: aqgan-preproc -> aqgan-train (a few
steps, checkpoints, resume) -> aqgan-generate (CF-1.8 netCDF checked with the IOOS compliance
checker, CSV at the points) -> aqgan-predict; and every bad input as one line, exit status 2 and
no partial output. Inputs are synthetic fields written in the genuine CAMS/ERA5 layouts."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from components.aq_downscaling.cli import generate_main, predict_main, preproc_main, train_main
from tests.fixtures.cams_products import make_scene, scene_config, write_scene

pytestmark = pytest.mark.xdist_group("aq_end_to_end")  # one worker builds the module's run once

AOI = (42.0, 43.6, 3.0, 4.6)  # 4 x 4 low-resolution cells of 0.4°, 16 x 16 at 0.1°
TRAIN = ("2021010100", "2021010221")
TEST = ("2021010300", "2021010321")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Scene, config, and the results of preproc -> train -> generate, run once for the module."""
    root = tmp_path_factory.mktemp("aq")
    scene = make_scene(hours=72, eac4_rows=4, eac4_cols=4, seed=0)
    paths = write_scene(scene, root)
    config = root / "config.yaml"
    config.write_text(scene_config(root, AOI, input_frame=(2, 2), output_frame=(8, 8), ensemble_size=4))
    out = {"root": root, "config": config, "paths": paths, "scene": scene}
    assert preproc_main(["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--dataset", "synthetic",
                         "--config", str(config)]) == 0
    assert train_main(["--model", "srgan", "--start-date", TRAIN[0], "--end-date", TRAIN[1],
                       "--config", str(config)]) == 0
    assert generate_main(["--model", "srgan", "--start-date", TEST[0], "--end-date", TEST[1],
                          "--config", str(config)]) == 0
    return out


def test_preproc_tiles(run):
    folder = run["root"] / "tiles" / "synthetic" / f"{TRAIN[0]}-{TRAIN[1]}"
    with netCDF4.Dataset(folder / "tiles.nc") as ds:
        assert ds.format == "aqgan-tiles 1" and ds.dataset == "synthetic"
        lr, hr, static = ds["lr"][:], ds["hr"][:], ds["static"][:]
        assert lr.shape[1:] == (8, 2, 2) and hr.shape[1:] == (1, 8, 8) and static.shape[1:] == (2, 8, 8)
        assert lr.shape[0] == 16 * 4  # 16 three-hourly steps x 4 positions
        assert [str(v) for v in ds["lr_var"][:]] == ["pm2p5", "u10", "v10", "t2m", "lsm", "sp", "z", "pm10"]
        assert abs(float(hr.mean())) < 0.2 and 0.7 < float(hr.std()) < 1.3  # normalised
        names = [str(v) for v in ds["variable"][:]]
        transforms = dict(zip(names, (str(t) for t in ds["stat_transform"][:])))
        assert transforms["pm2p5"] == "log" and transforms["t2m"] == "none"
        assert str(ds["static_transform"][1]) == "minmax"
    record = json.loads((folder / "run.json").read_text())
    sources = record["outputs"]["metrics"]["sources"]
    assert sources["pm2p5"] == "cams_global" and sources["t2m"] == "era5" and sources["z"] == "era5"


def test_training_logs_losses_and_writes_checkpoints(run):
    models = run["root"] / "models"
    rows = list(csv.DictReader((models / "losses.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("critic_loss", "generator_loss", "content"))
    assert sorted(p.name for p in (models / "checkpoints").iterdir()) == ["epoch_0001.pt", "epoch_0002.pt"]
    record = json.loads((models / "run.json").read_text())
    assert record["outputs"]["metrics"]["device"] == "cpu"
    from components.aq_downscaling.generation import load_model

    model = load_model(models / "model.pt")
    assert model.lr_variables == ["pm2p5", "u10", "v10", "t2m", "lsm", "sp", "z", "pm10"]
    assert model.static_fields.shape == (2, 16, 16) and np.isfinite(model.static_fields).all()
    assert model.static_fields.std(axis=(1, 2)).min() > 0.1  # the AoI's own static fields, normalised
    assert model.stats["pm2p5"]["transform"] == "log"


def test_resume_continues_from_the_newest_checkpoint(run, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(run["root"] / "models", models)
    code = train_main(["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--config", str(run["config"]),
                       "--resume", "--models", str(models), "--set", "training.epochs=3",
                       "--set", f"paths.models={models}"])
    assert code == 0
    before = list(csv.DictReader((run["root"] / "models" / "losses.csv").open()))
    after = list(csv.DictReader((models / "losses.csv").open()))
    assert [r["epoch"] for r in after] == ["1", "2", "3"]
    assert after[:2] == before
    assert (models / "checkpoints" / "epoch_0003.pt").exists()


def _cf_check(path: Path, tmp_path: Path) -> dict:
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / "cf.json"
    ok, errors = ComplianceChecker.run_checker(str(path), ["cf:1.8"], 0, "lenient", output_filename=str(report),
                                               output_format=["json"])
    result = json.loads(report.read_text())["cf:1.8"]
    failed = [(m["name"], m["msgs"]) for p in ("high_priorities", "medium_priorities", "low_priorities")
              for m in result[p] if m["value"][0] < m["value"][1]]
    assert ok and not errors and not failed, failed
    return result


def test_generate_writes_cf_netcdf_with_distinct_members(run, tmp_path):
    pytest.importorskip("compliance_checker")
    out = run["root"] / "output"
    nc = out / f"aqgan_synthetic_{TEST[0]}_{TEST[1]}.nc"
    _cf_check(nc, tmp_path)
    with netCDF4.Dataset(nc) as ds:
        assert ds.Conventions == "CF-1.8"
        assert ds["pm2p5"].dimensions == ("time", "member", "lat", "lon")
        assert ds["pm2p5"].shape == (8, 4, 16, 16)
        assert ds["pm2p5"].units == "ug m-3"
        assert ds["pm2p5"].standard_name == "mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air"
        assert ds["member"].standard_name == "realization"
        assert ds["pm2p5_mean"].cell_methods == "realization: mean"
        members = ds["pm2p5"][:].astype(np.float64)
        np.testing.assert_allclose(ds["pm2p5_mean"][:], members.mean(1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ds["pm2p5_std"][:], members.std(1, ddof=1), rtol=1e-4, atol=1e-5)
        q = ds["pm2p5_quantile"][:]
        assert list(ds["quantile"][:]) == [0.1, 0.5, 0.9] and np.all(np.diff(q, axis=1) >= 0)
        assert np.allclose(ds["lat"][:], 42.05 + 0.1 * np.arange(16))
        assert str(netCDF4.num2date(ds["time"][0], ds["time"].units)) == "2021-01-03 00:00:00"
    # members differ from each other, and the spread is reported
    assert np.abs(members[:, 0] - members[:, 1]).max() > 1e-3
    assert members.std(1).mean() > 0 and np.all(members >= 0)
    record = json.loads((out / "run.json").read_text())
    assert record["outputs"]["metrics"]["variables"]["pm2p5"]["mean_std"] > 0
    rows = list(csv.DictReader((out / f"aqgan_synthetic_{TEST[0]}_{TEST[1]}_points.csv").open()))
    assert len(rows) == 8 and rows[0]["point"] == "centre" and rows[0]["time"] == "2021-01-03T00:00:00Z"
    assert {"mean", "std", "q0.1", "q0.5", "q0.9", "member_0", "member_3"} <= set(rows[0])
    assert (out / f"aqgan_synthetic_{TEST[0]}_{TEST[1]}_quicklook.png").stat().st_size > 0


def test_generation_is_reproducible_for_a_seed(run, tmp_path):
    for name in ("a", "b"):
        assert generate_main(["--start-date", TEST[0], "--end-date", TEST[0], "--config", str(run["config"]),
                              "--members", "3", "--seed", "7", "--outdir", str(tmp_path / name)]) == 0
    files = [next((tmp_path / n).glob("*.nc")) for n in ("a", "b")]
    with netCDF4.Dataset(files[0]) as a, netCDF4.Dataset(files[1]) as b:
        np.testing.assert_array_equal(a["pm2p5"][:], b["pm2p5"][:])
        assert a["pm2p5"].shape[1] == 3


def test_predict_one_low_resolution_file(run, tmp_path):
    pytest.importorskip("compliance_checker")
    eac4 = run["paths"]["cams_global"][-1]  # 2021-01-03, all eight low-resolution inputs
    out = tmp_path / "pred" / "downscaled.nc"
    assert predict_main([str(eac4), "--model-file", str(run["root"] / "models" / "model.pt"), "--output", str(out),
                         "--members", "5"]) == 0
    _cf_check(out, tmp_path)
    with netCDF4.Dataset(out) as ds:
        assert ds["pm2p5"].shape == (8, 5, 16, 16)
        members = ds["pm2p5"][:]
        assert np.abs(members[:, 0] - members[:, 4]).max() > 1e-3
        assert ds.input_file == eac4.name


def test_cpu_when_no_gpu():
    import torch

    from components.aq_downscaling.training import select_device
    from components.common.errors import ServiceError

    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ServiceError, match="no CUDA GPU"):
            select_device("cuda")


# ------------------------------------------------------------------------------------------------
# Bad inputs: one line, exit status 2, nothing left behind


def _bad_inputs(run, tmp_path):
    root = run["root"]
    text = run["config"].read_text()
    nc_garbage = tmp_path / "garbage.nc"
    nc_garbage.write_bytes(b"GRIB not a netCDF file " * 8)
    cfgs = {}
    for key, new in {"noglob": text.replace(str(root / "era5" / "*.nc"), str(root / "nowhere" / "*.nc")),
                     "far": text.replace("lat_min: 42.0", "lat_min: 60.0").replace("lat_max: 43.6", "lat_max: 61.6")
                     .replace("lat: 42.8", "lat: 60.8"),
                     "tiny_aoi": text.replace("lat_max: 43.6", "lat_max: 42.2").replace("lat: 42.8", "lat: 42.1"),
                     "nostatic": text.replace(str(root / "static" / "orography.tif"), str(tmp_path / "dem.tif")),
                     "garbage": text.replace(str(root / "era5" / "*.nc"), str(nc_garbage))}.items():
        p = tmp_path / f"{key}.yaml"
        p.write_text(new)
        cfgs[key] = str(p)
    not_model = tmp_path / "model.pt"
    not_model.write_bytes(b"not a model")
    return cfgs, str(not_model), str(nc_garbage)


CASES = [
    ("preproc", ["--config", "{tmp}/absent.yaml"], "configuration file not found"),
    ("preproc", ["--config", "{noglob}"], "no era5 file matches"),
    ("preproc", ["--config", "{garbage}"], "not a readable netCDF file"),
    ("preproc", ["--config", "{far}"], "does not cover the AoI grid"),
    ("preproc", ["--config", "{tiny_aoi}"], "smaller than model.input_frame 2x2"),
    ("preproc", ["--config", "{nostatic}"], "static input orog_scal: file not found"),
    ("preproc", ["--config", "{cfg}", "--start-date", "2022010100", "--end-date", "2022010200"],
     "no time step between 2022010100 and 2022010200"),
    ("preproc", ["--config", "{cfg}", "--set", "inputs.low_res=[pm2p5, blh]"], "no low-resolution file holds blh"),
    ("preproc", ["--config", "{cfg}", "--set", "outputs.high_res=[no2]"], "the cams_europe files hold no no2"),
    ("train", ["--config", "{cfg}", "--set", "paths.tiles={tmp}/none"], "no tiles in"),
    ("train", ["--config", "{cfg}", "--start-date", "2020010100", "--end-date", "2020010200"],
     "no training tiles between 2020010100 and 2020010200"),
    ("train", ["--config", "{cfg}", "--resume", "--models", "{tmp}/m"], "--resume: no checkpoint"),
    ("train", ["--config", "{cfg}", "--set", "model.input_frame=[1, 1]", "--set", "model.output_frame=[4, 4]"],
     "frames and factor"),
    ("generate", ["--config", "{cfg}", "--model-file", "{not_model}"], "not an aqgan model file"),
    ("generate", ["--config", "{cfg}", "--model-file", "{tmp}/absent.pt"], "model file not found"),
    ("predict", ["{garbage_nc}", "--model-file", "{model}"], "not a readable netCDF file"),
    ("predict", ["{era5}", "--model-file", "{model}"], "lacks the model's low-resolution inputs pm2p5"),
    ("predict", ["{tmp}/absent.nc", "--model-file", "{model}"], "input not found"),
    ("predict", ["{eac4}", "--model-file", "{model}", "--output", "{tmp}/out.txt"], "must name a .nc file"),
    ("predict", ["{eac4}", "--model-file", "{model}", "--members", "0"], "argument --members"),
]


@pytest.mark.parametrize("command, argv, fragment", CASES, ids=[f"{c[0]}: {c[2]}" for c in CASES])
def test_bad_input(run, tmp_path, capsys, command, argv, fragment):
    cfgs, not_model, garbage_nc = _bad_inputs(run, tmp_path)
    fmt = {"tmp": str(tmp_path), "cfg": str(run["config"]), "not_model": not_model, "garbage_nc": garbage_nc,
           "model": str(run["root"] / "models" / "model.pt"), "era5": str(run["paths"]["era5"][0]),
           "eac4": str(run["paths"]["cams_global"][0]), **cfgs}
    args = [a.format(**fmt) for a in argv]
    mains = {"preproc": preproc_main, "train": train_main, "generate": generate_main, "predict": predict_main}
    out = tmp_path / "out"
    if command != "predict":
        if "--start-date" not in args:
            args += ["--start-date", TRAIN[0], "--end-date", TRAIN[1]]
        if command in ("preproc", "generate"):
            args += ["--outdir", str(out)]
        elif "--models" not in args:
            args += ["--models", str(out)]
    elif "--output" not in args:
        args += ["--output", str(out / "o.nc")]
    capsys.readouterr()
    try:
        code = mains[command](args)
    except SystemExit as e:
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"aqgan-{command}: error: ") and fragment in err[0], err
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    assert not any(p.name.startswith(".aqgan-") for p in tmp_path.rglob("*"))


def test_exit_status_of_the_command_in_a_process(run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "components.aq_downscaling.cli", "preproc", "--config",
                           str(run["config"]), "--start-date", "2021010100", "--end-date", "20210102",
                           "--outdir", str(tmp_path / "o")], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("aqgan-preproc: error: invalid value '20210102'")
    assert not (tmp_path / "o").exists()
