"""The configuration schema: Table 15's parameters and defaults, the default YAML file in step with
the schema, and one clear line (exit status 2) for every unknown key or bad value."""

from __future__ import annotations

import pytest
import yaml

from components.aq_downscaling.cli import generate_main, predict_main, preproc_main, train_main
from components.aq_downscaling.config import DEFAULT_CONFIG, Config, load_config
from components.common.errors import ServiceError


def test_defaults_are_those_of_table_15():
    cfg = Config()
    assert cfg.model.input_frame == (8, 8) and cfg.model.output_frame == (64, 64)
    assert cfg.model.type == "srgan"
    assert (cfg.model.generator_filters, cfg.model.discriminator_filters) == (64, 32)
    assert cfg.training.learning_rate == 1e-5
    assert cfg.training.batch_size == 128
    assert cfg.training.adversarial_loss == "wasserstein" and cfg.training.gradient_penalty > 0
    assert cfg.inputs.low_res == ("pm2p5", "u10", "v10", "t2m", "lsm", "sp", "z", "pm10")
    assert cfg.inputs.high_res_static == ("urban_frac", "orog_scal")
    assert cfg.outputs.high_res == ("pm2p5",)
    assert cfg.outputs.ensemble_size == 10
    assert cfg.aoi.lat_min < cfg.aoi.lat_max and cfg.aoi.lon_min < cfg.aoi.lon_max
    assert set(cfg.paths.datasets["cams-europe"].static) == {"urban_frac", "orog_scal"}
    assert cfg.factor == 8 and cfg.lr_resolution == pytest.approx(0.8)


def test_default_yaml_file_matches_the_schema():
    from_file = load_config(DEFAULT_CONFIG)
    assert from_file.as_dict() == Config().as_dict()
    # every key of the schema is written out in the file
    written = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for section, values in Config().as_dict().items():
        assert set(written[section]) == set(values), section


def test_empty_file_gives_the_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("")
    assert load_config(p).as_dict() == Config().as_dict()


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    p = tmp_path / "sub" / "c.yaml"
    p.parent.mkdir()
    p.write_text("paths: {tiles: t}\n")
    cfg = load_config(p)
    assert cfg.resolve(cfg.paths.tiles) == str(p.parent / "t")
    assert cfg.resolve("s3://bucket/x") == "s3://bucket/x"


@pytest.mark.parametrize("text, fragment", [
    ("training: {lerning_rate: 0.1}", "unknown key 'training.lerning_rate'"),
    ("colour: red", "unknown key 'colour' in the configuration: allowed at the top level: model, aoi"),
    ("model: {type: esrgan}", "invalid value 'esrgan' for parameter 'model.type': allowed one of srgan"),
    ("model: {output_frame: [60, 64]}", "parameter 'model.output_frame'"),
    ("model: {input_frame: [8, 8], output_frame: [24, 24]}", "power-of-two"),
    ("model: {generator_filters: 0}", "parameter 'model.generator_filters': allowed an integer >= 1"),
    ("model: {discriminator_filters: 2.5}", "parameter 'model.discriminator_filters'"),
    ("training: {learning_rate: fast}", "parameter 'training.learning_rate': allowed a number > 0"),
    ("training: {batch_size: -1}", "parameter 'training.batch_size'"),
    ("training: {adversarial_loss: hinge}", "allowed one of wasserstein"),
    ("training: {content_loss: l1}", "allowed one of crps, mse, none"),
    ("training: {device: tpu}", "parameter 'training.device'"),
    ("aoi: {lat_min: 50, lat_max: 40}", "parameter 'aoi.lat_max'"),
    ("aoi: {lon_min: 200}", "parameter 'aoi.lon_min'"),
    ("inputs: {low_res: [pm2p5, pm3]}", "invalid value 'pm3' for parameter 'inputs.low_res'"),
    ("inputs: {low_res: [pm2p5, pm2p5]}", "each name at most once"),
    ("outputs: {high_res: [pm1]}", "parameter 'outputs.high_res'"),
    ("outputs: {ensemble_size: 0}", "parameter 'outputs.ensemble_size'"),
    ("outputs: {quantiles: [0.9, 0.1]}", "parameter 'outputs.quantiles'"),
    ("outputs: {points: [{name: Oslo, lat: 59.9, lon: 10.7}]}", "inside the AoI"),
    ("outputs: {points: [{name: A, lat: 45, lon: 6, height: 3}]}", "unknown key 'outputs.points[0].height'"),
    ("inputs: {high_res_static: [urban_frac, orog_scal, population]}", "missing: population"),
    ("paths: {datasets: {x: {cams_global: a.nc, static: {urban_frac: u.nc, orog_scal: o.nc}, wind: w.nc}}}",
     "unknown key 'paths.datasets.x.wind'"),
    ("model: [1, 2]", "parameter 'model'"),
    ("model: {type: srgan", "is not valid YAML"),
    ("- 1\n- 2", "configuration must be a YAML mapping"),
])
def test_bad_configuration_is_one_clear_line(tmp_path, capsys, text, fragment):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    with pytest.raises(ServiceError) as info:
        load_config(p)
    assert fragment in info.value.one_line()
    code = preproc_main(["--config", str(p), "--start-date", "2021010100", "--end-date", "2021010200",
                         "--outdir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("aqgan-preproc: error: ") and fragment in err[0]
    assert not (tmp_path / "out").exists()


def test_set_overrides(tmp_path):
    cfg = load_config(None, ["training.epochs=3", "model.input_frame=4x4", "model.output_frame=[16, 16]",
                             "outputs.quantiles=0.1,0.9"])
    assert cfg.training.epochs == 3 and cfg.model.input_frame == (4, 4) and cfg.factor == 4
    assert cfg.outputs.quantiles == (0.1, 0.9)
    with pytest.raises(ServiceError, match="--set needs KEY=VALUE"):
        load_config(None, ["training.epochs"])


@pytest.mark.parametrize("main, name", [(preproc_main, "aqgan-preproc"), (train_main, "aqgan-train"),
                                        (generate_main, "aqgan-generate")])
def test_help_lists_every_parameter(main, name, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    plain = Config().as_dict()
    for section, values in plain.items():
        for key in values:
            assert f"{section}.{key} = " in out, f"{section}.{key} missing from {name} --help"
    for flag in ("--start-date", "--end-date", "--config", "--dataset", "--set"):
        assert flag in out


def test_predict_help(capsys):
    with pytest.raises(SystemExit):
        predict_main(["--help"])
    out = capsys.readouterr().out
    assert "FILE" in out and "--model-file" in out and "--output" in out and "--members" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--model", "esrgan"], "invalid choice: 'esrgan'"),
    (["--start-date", "2021-01-01"], "parameter 'start-date': allowed a date and hour YYYYMMDDHH"),
    (["--start-date", "2021013200"], "parameter 'start-date'"),
    (["--end-date", "2020123123"], "a date not before --start-date 2021010100"),
    (["--dataset", "nowhere"], "invalid value 'nowhere' for parameter 'dataset'"),
    (["--set", "training.epochs=many"], "parameter 'training.epochs'"),
])
def test_bad_command_line(argv, fragment, tmp_path, capsys):
    base = {"--model": "srgan", "--start-date": "2021010100", "--end-date": "2021010200",
            "--config": str(DEFAULT_CONFIG)}
    args = []
    given = dict(zip(argv[::2], argv[1::2]))
    for k, v in {**base, **given}.items():
        args += [k, v]
    try:
        code = generate_main(args + ["--outdir", str(tmp_path / "out")])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "out").exists()


def test_configurations_the_tests_write_load_and_round_trip(tmp_path):
    from components.aq_downscaling.config import dump_config
    from tests.fixtures.cams_products import scene_config

    texts = [DEFAULT_CONFIG.read_text(), "training:\nmodel: {}\n",
             scene_config(tmp_path, (42.0, 43.6, 11.0, 12.6), extra={"training.epochs": 1}),
             "model: {input_frame: 4x4, output_frame: 16X16, noise_channels: 1e1}\n"
             "training: {device: ' CPU ', content_loss: MSE, learning_rate: '1e-4'}\n"
             "inputs: {low_res: 'pm2p5, u10'}\noutputs: {quantiles: 0.5, points: [[A, 45, 6]]}\n"
             "paths: {tiles: 2021, datasets: {x.1: {era5: a.nc, static: {urban_frac: u.nc, "
             "orog_scal: {path: o.tif, variable: '', transform: MINMAX}}}}}\n"]
    for text in texts:
        cfg = load_config(text=text)
        assert load_config(text=dump_config(cfg)).as_dict() == cfg.as_dict()
    last = load_config(text=texts[-1])
    assert (last.factor, last.model.noise_channels) == (4, 10)
    assert (last.training.device, last.training.content_loss) == ("cpu", "mse")
    assert (last.inputs.low_res, last.outputs.quantiles, last.paths.tiles) == (("pm2p5", "u10"), (0.5,), "2021")
    static = last.paths.datasets["x.1"].static["orog_scal"]
    assert (static.path, static.variable, static.transform) == ("o.tif", None, "minmax")
    assert load_config(text=texts[1]).as_dict() == Config().as_dict()


@pytest.mark.parametrize("text, line", [
    ("training: {lerning_rate: 0.1}", "unknown key 'training.lerning_rate' in the configuration (did you mean "
                                      "'learning_rate'?): allowed in 'training': learning_rate, batch_size,"),
    ("model: {input_frame: [0, 0]}", "invalid value [0, 0] for parameter 'model.input_frame': allowed two integers "
                                     "[rows, cols] (or 'RxC'), each >= 1"),
    ("outputs: {quantiles: [0.1, a]}", "invalid value 'a' for parameter 'outputs.quantiles[1]': allowed a number "
                                       ">= 0 and <= 1"),
    ("outputs: {points: [{name: X, lat: 95, lon: 6}]}", "invalid value 95 for parameter 'outputs.points[0].lat': "
                                                        "allowed a number >= -90 and <= 90"),
    ("paths: {datasets: [a]}", "invalid value ['a'] for parameter 'paths.datasets': allowed a mapping of names to "
                               "{cams_global, cams_europe, era5, static}"),
    ("model: {noise_channels: true}", "invalid value True for parameter 'model.noise_channels': allowed an integer "
                                      ">= 1 and <= 256"),
])
def test_errors_name_the_key_the_value_as_written_and_what_is_allowed(text, line):
    with pytest.raises(ServiceError) as info:
        load_config(text=text)
    assert info.value.one_line().startswith(line), info.value.one_line()
