"""train_lstm: seed parameters and defaults, what a run writes (model, ONNX, per-epoch history,
validation figures), and every bad input (one line, exit status 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from components.crop_lstm.params import TrainParams
from components.crop_lstm.train_cli import main

torch.set_num_threads(1)


def test_seed_parameters_and_defaults(capsys):
    p = TrainParams()
    assert (p.n_epochs, p.batch_size, p.class_weights, p.learning_rate, p.val) == (50, 32, 0, 1e-3, None)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--input_dir", "--output_dir", "--n_epochs", "--batch_size", "--class_weights", "--learning_rate",
                 "--val"):
        assert flag in help_text


def test_outputs_of_a_training_run(chain):
    files = sorted(p.name for p in chain.model_dir.iterdir())
    assert files == ["crop_lstm.h5", "crop_lstm.onnx", "metrics.json", "run.json"]
    m = json.loads((chain.model_dir / "metrics.json").read_text())
    assert m["split"] == "validation" and m["samples"] == 80 and m["epochs"] == 12
    assert [e["epoch"] for e in m["history"]] == list(range(1, 13))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1", "seconds"} <= set(m["history"][0])
    assert m["history"][-1]["loss"] < m["history"][0]["loss"]
    assert m["overall_accuracy"] > 0.9 and m["kappa"] > 0.85 and m["macro_f1"] > 0.9
    cm = np.array(m["confusion_matrix"]["matrix"])
    assert cm.shape == (4, 4) and cm.sum() == 80 and np.trace(cm) / 80 == pytest.approx(m["overall_accuracy"])
    assert m["confusion_matrix"]["names"] == ["Grassland", "Maize", "Rapeseed", "Winter Wheat"]
    assert m["onnx_max_abs_difference"] < 1e-3
    record = json.loads((chain.model_dir / "run.json").read_text())
    assert record["service"] == "train_lstm" and record["params"]["batch_size"] == 16


def test_without_validation_and_with_class_weights(chain, tmp_path):
    out = tmp_path / "m"
    assert main(["--input_dir", str(chain.dataset), "--output_dir", str(out), "--n_epochs", "2", "--batch_size", "64",
                 "--class_weights", "1", "--hidden_size", "8", "--num_layers", "1", "--model_name", "tiny"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "training" and m["samples"] == 160 and "val_loss" not in m["history"][0]
    assert (out / "tiny.h5").exists() and (out / "tiny.onnx").exists()


@pytest.fixture(scope="module")
def bad(tmp_path_factory, chain):
    root = tmp_path_factory.mktemp("train_bad")
    x = np.load(chain.dataset / "train.npy")
    y = np.load(chain.dataset / "y_train.npy")

    def folder(name, xa, ya, xname="train.npy", yname="y_train.npy"):
        d = root / name
        d.mkdir()
        if xa is not None:
            np.save(d / xname, xa)
        if ya is not None:
            np.save(d / yname, ya)
        return str(d)

    nan = x.copy()
    nan[0, 0, 0] = np.nan
    cases = dict(
        flat=folder("flat", x.reshape(len(x), -1), y),
        y2d=folder("y2d", x, np.stack([y, y], 1)),
        short=folder("short", x, y[:-1]),
        nan=folder("nan", nan, y),
        one_class=folder("one_class", x, np.zeros_like(y)),
        float_labels=folder("float_labels", x, y + 0.5),
        big_label=folder("big_label", x, y + 300),
        missing=folder("missing", None, y),
        val_shape=folder("val_shape", x[:, :10], y, "val.npy", "y_val.npy"),
        val_empty=folder("val_empty", None, None),
        root=str(root),
    )
    (root / "text").mkdir()
    (root / "text" / "train.npy").write_text("not numpy")
    np.save(root / "text" / "y_train.npy", y)
    cases["text"] = str(root / "text")
    return cases


CASES = [
    ("2-D samples", "flat", [], "train.npy has shape (160, 108): expected [N, timesteps, bands] (3 dimensions)"),
    ("2-D labels", "y2d", [], "y_train.npy has shape (160, 2): expected one label per sample"),
    ("label count", "short", [], "y_train.npy has 159 labels for the 160 samples of train.npy"),
    ("NaN samples", "nan", [], "train.npy holds NaN or infinite values"),
    ("one class", "one_class", [], "a single class (0): at least two are needed"),
    ("float labels", "float_labels", [], "holds the non-integer label"),
    ("label too big", "big_label", [], "class ids must be 0..254"),
    ("no train.npy", "missing", [], "samples file not found"),
    ("not npy", "text", [], "train.npy is not a readable NumPy .npy array"),
    ("batch size not a power of 2", "chain", ["--batch_size", "24"],
     "invalid value 24 for parameter 'batch_size': allowed a power of 2 greater than 2"),
    ("batch size 2", "chain", ["--batch_size", "2"], "parameter 'batch_size'"),
    ("one epoch", "chain", ["--n_epochs", "1"], "parameter 'n_epochs': allowed a number > 1"),
    ("learning rate 1", "chain", ["--learning_rate", "1"], "parameter 'learning_rate': allowed a number > 0 and < 1"),
    ("learning rate 0", "chain", ["--learning_rate", "0"], "parameter 'learning_rate': allowed a number > 0"),
    ("class weights 2", "chain", ["--class_weights", "2"], "parameter 'class_weights': allowed a number >= 0 and <= 1"),
    ("validation shape", "chain", ["--val", "{val_shape}"], "val.npy has 10 time steps x 9 bands; train.npy has 12 x 9"),
    ("validation folder empty", "chain", ["--val", "{val_empty}"], "expected one pair <name>.npy and y_<name>.npy"),
    ("validation folder absent", "chain", ["--val", "{root}/nowhere"], "input not found"),
    ("device", "chain", ["--device", "tpu"], "parameter 'device'"),
]


@pytest.mark.parametrize("case_id, key, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, key, extra, fragment, bad, chain, tmp_path, capsys):
    source = str(chain.dataset) if key == "chain" else bad[key]
    out = tmp_path / "out"
    code = main(["--input_dir", source, "--output_dir", str(out), "--n_epochs", "2",
                 *[a.format(**bad) for a in extra]])
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("train_lstm: error: "), lines
    assert fragment in lines[0]
    assert not out.exists()


def test_evaluation_harness_runs_on_an_archive(chain, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "timesen2crop_eval.py"
    spec = importlib.util.spec_from_file_location("timesen2crop_eval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(chain.archive), "--val-tiles", "33TVN", "--test-tiles", "33UVP", "--n-epochs", "2",
                        "--hidden-size", "8", "--batch-size", "64"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"]["test"] == 80 and report["peer"]["overall_accuracy"] == 0.79
    assert {"overall_accuracy", "kappa", "macro_f1"} <= set(report["test"])
    assert module.main([str(chain.root / "absent")]) == 2
