"""A damaged extract_data folder given to train, and a tile without georeferencing given to predict:
one line naming the file and the problem, exit status 2, nothing in the output folder, and no
training or prediction started. The folders are real extract_data outputs, damaged afterwards."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio

from components.s2_patch_classifier import modelio
from components.s2_patch_classifier.cli import main
from components.s2_patch_classifier.model import Arch, build

from .fixtures import TINY, synthetic_tile

FAST = ["-patch_size", "64", "-epochs", "1", "--device", "cpu"] + TINY
BANDS = ("B2", "B3", "B4", "B8")


@pytest.fixture(scope="module")
def patches(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    synthetic_tile(root / "tiles", "A")
    assert main(["-action", "extract_data", "-i", str(root / "tiles"), "-o", str(root / "patches"),
                 "-patch_size", "64"]) == 0
    return root / "patches"


def _edit_index(change):
    def damage(folder):
        index = json.loads((folder / "patches.json").read_text())
        (folder / "patches.json").write_text(json.dumps(change(index)))
    return damage


def _set(key, value):
    def change(index):
        parent = index
        *path, last = key.split(".")
        for k in path:
            parent = parent[k]
        parent[last] = value
        return index
    return change


def _truncate(name, keep):
    def damage(folder):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:keep])
    return damage


def _save(name, array, **kw):
    def damage(folder):
        np.save(folder / name, array, **kw)
    return damage


def _labels_plus(value):
    def damage(folder):
        labels = np.load(folder / "labels.npy")
        labels[0, 0, 0] = value
        np.save(folder / "labels.npy", labels)
    return damage


CASES = [
    # (id, damage, fragment of the message, with {folder})
    ("images cut short", _truncate("images.npy", 100_000),
     "{folder}/images.npy is damaged or not an array written by extract_data: mmap length is greater than file size"),
    ("labels emptied", _truncate("labels.npy", 0), "{folder}/labels.npy is damaged or not an array"),
    ("labels missing", lambda f: (f / "labels.npy").unlink(),
     "{folder}/labels.npy is missing: patches.json says the patches are labelled"),
    ("images of another shape", _save("images.npy", np.zeros((4, 4, 32, 32), np.float32)),
     "{folder}/images.npy holds float32 (4, 4, 32, 32), but patches.json describes float32 (4, 4, 64, 64)"),
    ("images of integers", _save("images.npy", np.zeros((4, 4, 64, 64), np.uint16)),
     "{folder}/images.npy holds uint16 (4, 4, 64, 64), but patches.json describes float32"),
    ("images of Python objects", _save("images.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
     "{folder}/images.npy is damaged or not an array written by extract_data: Array can't be memory-mapped"),
    ("float labels", _save("labels.npy", np.full((4, 64, 64), 0.5, np.float32)),
     "{folder}/labels.npy holds float32 (4, 64, 64), but patches.json describes uint8 (4, 64, 64)"),
    ("label beyond the classes", _labels_plus(7),
     "{folder}/labels.npy holds label values 7, beyond the 2 classes of patches.json (0..1, 255 ignored)"),
    ("index a JSON list", lambda f: (f / "patches.json").write_text("[]"),
     "{folder}/patches.json is not a patch index written by extract_data (a JSON list, not an object)"),
    ("count larger than the arrays", _edit_index(_set("count", 100)),
     "{folder}/images.npy holds float32 (4, 4, 64, 64), but patches.json describes float32 (100, 4, 64, 64)"),
    ("count smaller than the tiles' patches", _edit_index(_set("count", 2)),
     "{folder}/patches.json is damaged: each of 'tiles' must have a 'name' and 'patches' [start, end] within 0..2"),
    ("count not a number", _edit_index(_set("count", "4")),
     "{folder}/patches.json is damaged: 'count' must be a whole number > 0, got '4'"),
    ("std all zero", _edit_index(_set("stats.std", [0, 0, 0, 0])),
     "{folder}/patches.json is damaged: 'stats.std' must be > 0 for every band (each band is divided by it), "
     "got [0, 0, 0, 0]"),
    ("stats of another band count", _edit_index(_set("stats.mean", [0, 0])),
     "{folder}/patches.json is damaged: 'stats.mean' must be 4 finite numbers, one per band, got [0, 0]"),
    ("stats not finite", _edit_index(_set("stats.low", [0, "NaN", 0, 0])), "'stats.low' must be 4 finite numbers"),
    ("no bands", _edit_index(_set("bands", [])), "{folder}/patches.json is damaged: 'bands' must be a list"),
    ("positions of another count", _save("positions.npy", np.zeros((3, 3), np.int32)),
     "{folder}/positions.npy holds int32 (3, 3), but patches.json describes integers (4, 3)"),
]


@pytest.mark.parametrize("case_id, damage, fragment", CASES, ids=[c[0] for c in CASES])
def test_damaged_patch_folder(case_id, damage, fragment, patches, tmp_path, capsys):
    folder = tmp_path / "pp"
    shutil.copytree(patches, folder)
    damage(folder)
    out = tmp_path / "out"
    capsys.readouterr()
    code = main(["-action", "train", "-i", str(folder), "-o", str(out)] + FAST)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("s2-patch-classifier: error: ") and "Traceback" not in err, err
    assert fragment.format(folder=folder) in lines[0]
    assert not out.exists() or not any(out.rglob("*"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    arch = Arch(len(BANDS), 3, "resnet14", 8)
    stats = {"low": [0] * 4, "high": [3000] * 4, "mean": [1000] * 4, "std": [500] * 4}
    modelio.save_pytorch(path, build(arch), modelio.base_meta(arch, BANDS, [0, 1, 2], 64, stats, False))
    return path


def _without(tif, drop: str):
    """The tile rewritten without its CRS or without its geotransform."""
    with rasterio.open(tif) as ds:
        profile, data, descriptions = ds.profile, ds.read(), ds.descriptions
    profile.pop(drop)
    with rasterio.open(tif, "w", **profile) as ds:
        ds.write(data)
        ds.descriptions = descriptions


@pytest.mark.parametrize("drop, fragment", [("crs", "tile N (N.tif) has no coordinate reference system"),
                                            ("transform", "tile N (N.tif) has no geotransform")])
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_predict_refuses_a_tile_without_georeferencing(drop, fragment, model, tmp_path, capsys):
    _without(synthetic_tile(tmp_path / "tiles", "N", labels=False), drop)
    out = tmp_path / "out"
    code = main(["-action", "predict", "-i", str(tmp_path / "tiles"), "-o", str(out), "-model_file", str(model),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in err, err
    assert not out.exists() or not any(out.rglob("*"))


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_full_refuses_a_tile_to_classify_without_crs_before_training(tmp_path, capsys):
    synthetic_tile(tmp_path / "train", "T", labels=True)
    _without(synthetic_tile(tmp_path / "new", "N", labels=False), "crs")
    out = tmp_path / "out"
    code = main(["-action", "full", "-i", str(tmp_path / "train"), "--predict_input", str(tmp_path / "new"),
                 "-o", str(out), "-patch_size", "64", "-epochs", "1", "--encoder", "resnet14", "--width", "8",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and "tile N (N.tif) has no coordinate reference system" in lines[0], err
    assert "epoch 1/" not in err, "training ran first"
    assert not out.exists() or not any(out.rglob("*"))
