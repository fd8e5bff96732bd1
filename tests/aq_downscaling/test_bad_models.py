"""Bad model files given to aqgan-predict, aqgan-generate and aqgan-train --resume: each one is
one line naming the file and the problem, exit status 2, and nothing left in the output folder.

The good model is trained once for the module the cheap way of the end-to-end test (synthetic
scene, tiny generator, one epoch); every case writes a corrupted copy of it (or of its training
checkpoint), or a file of another kind, and runs the real command."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from components.aq_downscaling.cli import generate_main, predict_main, preproc_main, train_main
from tests.fixtures.cams_products import make_scene, scene_config, write_scene
from tests.fixtures.corruption import crop_lstm_h5

pytestmark = pytest.mark.xdist_group("aq_bad_models")

AOI = (42.0, 43.6, 3.0, 4.6)
TRAIN = ("2021010100", "2021010121")
TEST = ("2021010200", "2021010221")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("aq_bad_models")
    scene = make_scene(hours=48, eac4_rows=4, eac4_cols=4, seed=1)
    paths = write_scene(scene, root)
    config = root / "config.yaml"
    config.write_text(scene_config(root, AOI, input_frame=(2, 2), output_frame=(8, 8), ensemble_size=2,
                                   extra={"training.epochs": 1}))
    common = ["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--config", str(config)]
    assert preproc_main(common + ["--dataset", "synthetic"]) == 0
    assert train_main(common) == 0
    models = root / "models"
    return {"root": root, "config": config, "model": models / "model.pt",
            "checkpoint": models / "checkpoints" / "epoch_0001.pt", "eac4": paths["cams_global"][-1],
            "static": paths}


@pytest.fixture(autouse=True)
def _log_to_this_tests_stderr():
    """The command's log handler is created on the first run in this process, bound to the stderr
    captured then; each test here gets its own, so that stderr holds what the command wrote."""
    root = logging.getLogger()
    saved = list(root.handlers)
    for h in saved:
        if type(h) is logging.StreamHandler:
            root.removeHandler(h)
    yield
    root.handlers[:] = saved


# ------------------------------------------------------------------------------------------------
# How each bad file is made from the good one


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _edit(change):
    """A copy of the good model with ``change(state)`` applied."""
    def make(t, dest: Path) -> Path:
        state = _load(t["model"])
        change(state)
        torch.save(state, dest)
        return dest
    return make


def _bytes(transform):
    def make(t, dest: Path) -> Path:
        dest.write_bytes(transform(t["model"].read_bytes()))
        return dest
    return make


def _hdf5(t, dest: Path) -> Path:
    return crop_lstm_h5(dest)


def _patch_classifier(t, dest: Path) -> Path:
    from components.s2_patch_classifier import modelio
    from components.s2_patch_classifier.model import Arch, build

    arch = Arch(4, 2, "resnet14", 4)
    meta = modelio.base_meta(arch, ("B2", "B3", "B4", "B8"), [0, 1], 64,
                             {"low": [0] * 4, "high": [1] * 4, "mean": [0] * 4, "std": [1] * 4}, False)
    return modelio.save_pytorch(dest, build(arch), meta)


def _checkpoint(t, dest: Path) -> Path:
    shutil.copy(t["checkpoint"], dest)
    return dest


def _pickled_module(t, dest: Path) -> Path:
    from components.aq_downscaling.model import Generator

    torch.save(Generator(8, 2, 1, 8, 2, 1, 4, (0,)), dest)  # the whole module, pickled
    return dest


def _drop(*keys):
    def change(state):
        node = state
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return change


def _set(value, *keys):
    def change(state):
        node = state
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value
    return change


def _rename_static(state):
    state["variables"]["static"] = ["urban_frac", "orog_fine"]
    state["stats"]["orog_fine"] = state["stats"].pop("orog_scal")
    state["static_params"]["orog_fine"] = state["static_params"].pop("orog_scal")


def _blh_input(state):
    state["variables"]["low_res"][-1] = "blh"
    state["stats"]["blh"] = {"transform": "none", "mean": 500.0, "std": 200.0}


def _nan_weights(state):
    state["generator"]["head.weight"][0, 0, 0, 0] = float("nan")


def _extra_weight(state):
    state["generator"]["head2.weight"] = torch.zeros(3, 3)


CASES = [
    # (id, command, make the bad file, fragment of the message)
    ("empty file", "predict", _bytes(lambda b: b""), "model.pt is empty (0 bytes): not an aqgan model file"),
    ("truncated file", "predict", _bytes(lambda b: b[: len(b) // 2]),
     "model.pt is not an aqgan model file: not a readable PyTorch file (truncated or corrupt"),
    ("random bytes", "generate", _bytes(lambda b: np.random.default_rng(0).bytes(4096)),
     "model.pt is not an aqgan model file: not a readable PyTorch file"),
    ("crop-LSTM .h5 model", "predict", _hdf5, "crop_lstm.h5 is an HDF5 file"),
    ("patch-classifier model", "generate", _patch_classifier,
     "model.pt is an s2-patch-classifier model, not an aqgan model"),
    ("training checkpoint", "predict", _checkpoint, "model.pt is a training checkpoint of aqgan-train"),
    ("pickled Python objects", "predict", _pickled_module, "model.pt holds pickled Python objects"),
    ("newer format version", "predict", _edit(_set(99, "format_version")), "model.pt: model format version 99"),
    ("missing weight", "predict", _edit(_drop("generator", "tail.2.bias")),
     "model.pt: the generator weights do not match its architecture: missing tail.2.bias"),
    ("unexpected weight", "generate", _edit(_extra_weight),
     "model.pt: the generator weights do not match its architecture: unexpected head2.weight"),
    ("another width", "predict", _edit(_set(16, "arch", "generator_filters")),
     "model.pt: the generator weights do not match its architecture: head.weight is [8, 12, 3, 3], "
     "the architecture needs [16, 12, 3, 3]"),
    ("no generator weights", "predict", _edit(_drop("generator")), "model.pt is incomplete: no 'generator'"),
    ("no normalisation statistics", "predict", _edit(_drop("stats")), "model.pt is incomplete: no 'stats'"),
    ("architecture key missing", "generate", _edit(_drop("arch", "noise_channels")),
     "model.pt: arch.noise_channels is missing"),
    ("factor not a power of two", "predict", _edit(_set(3, "arch", "factor")),
     "model.pt: arch.factor is 3, not a power of two"),
    ("unknown input variable", "predict", _edit(_set(lambda v: v[:1] + ["pm25"] + v[2:], "variables", "low_res")),
     "model.pt: unknown low-resolution input 'pm25'"),
    ("variables and channels disagree", "predict", _edit(_set(lambda v: v[:-1], "variables", "low_res")),
     "model.pt: 7 low-resolution inputs for 8 input channels"),
    ("statistics of a variable missing", "predict", _edit(_drop("stats", "pm2p5")),
     "model.pt: no normalisation statistics for pm2p5"),
    ("static fields of another grid", "predict", _edit(_set(torch.zeros(2, 4, 4), "static_fields")),
     "model.pt: static fields are 2x4x4, the model's grid needs 2x16x16"),
    ("non-finite weights", "predict", _edit(_nan_weights), "model.pt: non-finite values in weight head.weight"),
    ("broken configuration", "predict", _edit(_set("model: [1,", "config_yaml")),
     "model.pt: its configuration is not readable"),
    ("input lacks a model variable", "predict", _edit(_blh_input), "lacks the model's low-resolution inputs blh"),
    ("static input the dataset lacks", "generate", _edit(_rename_static),
     "model.pt needs the static input orog_fine, which dataset synthetic does not configure"),
]


def _stderr_lines(err: str) -> list[str]:
    """What the command itself wrote on stderr: everything but timestamped log lines."""
    return [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]


def _check_one_line(capsys, code, prog: str, name: str, fragment: str) -> None:
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: "), lines
    assert name in lines[0] and fragment in lines[0], lines[0]


@pytest.mark.parametrize("case_id, command, make, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_model(case_id, command, make, fragment, trained, tmp_path, capsys):
    model = make(trained, tmp_path / "model.pt")
    out = tmp_path / "out"
    if command == "predict":
        argv = [str(trained["eac4"]), "--model-file", str(model), "--output", str(out / "downscaled.nc")]
        main = predict_main
    else:
        argv = ["--start-date", TEST[0], "--end-date", TEST[1], "--config", str(trained["config"]),
                "--model-file", str(model), "--outdir", str(out)]
        main = generate_main
    capsys.readouterr()
    code = main(argv)
    _check_one_line(capsys, code, f"aqgan-{command}", model.name, fragment)
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    assert not any(p.name.startswith(".aqgan-") for p in tmp_path.rglob("*"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _checkpoint_edit(change):
    def apply(path: Path) -> None:
        state = _load(path)
        change(state)
        torch.save(state, path)
    return apply


RESUME_CASES = [
    ("truncated checkpoint", _truncate, "epoch_0001.pt is not an aqgan-train checkpoint: not a readable PyTorch file"),
    ("checkpoint without the critic", _checkpoint_edit(_drop("critic")),
     "epoch_0001.pt is incomplete: no 'critic'"),
    ("checkpoint weights of another shape", _checkpoint_edit(_set(lambda w: w[:, :4], "critic", "out.weight")),
     "epoch_0001.pt: the critic weights do not match its architecture: out.weight is [1, 4]"),
    ("checkpoint with a broken optimiser state", _checkpoint_edit(_set({"state": {}}, "opt_g")),
     "epoch_0001.pt: the generator's optimiser state does not fit the model"),
    ("model file in the checkpoint folder", lambda p: p.write_bytes((p.parent.parent / "model.pt").read_bytes()),
     "epoch_0001.pt is not an aqgan-train checkpoint: it is a file of format 'aqgan-model'"),
]


@pytest.mark.parametrize("case_id, spoil, fragment", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_bad_checkpoint_on_resume(case_id, spoil, fragment, trained, tmp_path, capsys):
    models = tmp_path / "models"
    shutil.copytree(trained["model"].parent, models)
    ckpt = models / "checkpoints" / "epoch_0001.pt"
    spoil(ckpt)
    before = sorted(p.relative_to(models) for p in models.rglob("*"))
    capsys.readouterr()
    code = train_main(["--start-date", TRAIN[0], "--end-date", TRAIN[1], "--config", str(trained["config"]),
                       "--resume", "--models", str(models), "--set", "training.epochs=2",
                       "--set", f"paths.models={models}"])
    _check_one_line(capsys, code, "aqgan-train", ckpt.name, fragment)
    assert sorted(p.relative_to(models) for p in models.rglob("*")) == before  # nothing new, nothing half-written


def test_the_good_model_runs(trained, tmp_path):
    """The files above are bad because of their corruption only: the original predicts."""
    out = tmp_path / "out" / "downscaled.nc"
    assert predict_main([str(trained["eac4"]), "--model-file", str(trained["model"]), "--output", str(out)]) == 0
    assert out.is_file()
