"""train_lstm with a damaged dataset.json beside train.npy, a train.npy that is really an .npz
archive, or samples without any observation: exit status 2, one line naming the file and the
problem, no traceback, nothing written. Refused before any training, so the arrays are small."""

from __future__ import annotations

import os

import numpy as np
import pytest

from components.crop_lstm.train_cli import main

PROG = "train_lstm"


def _samples(n=40):
    return np.random.default_rng(0).uniform(100, 3000, (n, 12, 9)).astype(np.float32)


def _folder(root, name, x=None, meta=None, npz=False):
    d = root / name
    d.mkdir()
    x = _samples() if x is None else x
    if npz:
        np.savez(d / "samples", x=x)
        os.rename(d / "samples.npz", d / "train.npy")
    else:
        np.save(d / "train.npy", x)
    np.save(d / "y_train.npy", np.arange(len(x)) % 2 + 2)
    if meta is not None:
        (d / "dataset.json").write_text(meta)
    return d


CASES = [
    ("dataset.json a list", dict(meta="[]"), "dataset.json holds []: expected a JSON object"),
    ("dataset.json not JSON", dict(meta="{bands: B2}"), "dataset.json is not readable JSON"),
    ("classes a list", dict(meta='{"classes": [1, 2]}'),
     "dataset.json: 'classes' is [1, 2]: expected an object of class id -> name"),
    ("class key a name", dict(meta='{"classes": {"maize": "Maize"}}'),
     "dataset.json: class key 'maize' is not a class id: expected an integer 0..254"),
    ("class name a number", dict(meta='{"classes": {"2": 5}}'),
     "dataset.json: the name of class 2 is 5: expected a text"),
    ("bands a number", dict(meta='{"bands": 5}'), "dataset.json: 'bands' is 5: expected a list of names"),
    ("bands numbers", dict(meta='{"bands": [1, 2, 3, 4, 5, 6, 7, 8, 9]}'), "dataset.json: 'bands' is [1, 2, 3"),
    ("classes NaN", dict(meta='{"classes": NaN}'), "dataset.json is not readable JSON (NaN is not a JSON value"),
    ("npz named .npy", dict(npz=True), "train.npy is a NumPy .npz archive (arrays: x), not a .npy array"),
    ("no observation", dict(x=np.zeros((40, 12, 9), np.float32)),
     "train.npy holds no observation: every value is 0 (0 = no observation)"),
]


@pytest.mark.parametrize("case_id, files, message", CASES, ids=[c[0] for c in CASES])
def test_bad_dataset_files(case_id, files, message, tmp_path, capsys):
    source = _folder(tmp_path, "in", **files)
    out = tmp_path / "out"
    code = main(["--input_dir", str(source), "--output_dir", str(out), "--n_epochs", "2", "--batch_size", "16",
                 "--hidden_size", "8", "--num_layers", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert message in errors[0], errors[0]
    assert not out.exists()


def test_a_complete_dataset_json_is_accepted(tmp_path):
    meta = ('{"bands": ["B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"], "temporal": "monthly", '
            '"timesteps": ["2017-09", "2017-10", "2017-11", "2017-12", "2018-01", "2018-02", "2018-03", "2018-04", '
            '"2018-05", "2018-06", "2018-07", "2018-08"], "classes": {"2": "Maize", "3": "Oats"}}')
    source = _folder(tmp_path, "in", meta=meta)
    out = tmp_path / "out"
    assert main(["--input_dir", str(source), "--output_dir", str(out), "--n_epochs", "2", "--batch_size", "16",
                 "--hidden_size", "4", "--num_layers", "1", "--device", "cpu"]) == 0
    assert (out / "crop_lstm.h5").exists()
