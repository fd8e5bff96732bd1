"""Every bad input: one line naming the problem, exit status 2, nothing left in the output folder.
Runs the real command line (in process; one case as a child process for the exit status)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch

from components.s2_patch_classifier import modelio
from components.s2_patch_classifier.cli import main
from components.s2_patch_classifier.model import Arch, ResNetEncoder, build

from .fixtures import TINY, synthetic_tile

FAST = ["-patch_size", "64", "-epochs", "1"] + TINY


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    synthetic_tile(root / "good", "A")
    synthetic_tile(root / "wrong_labels", "A", label_size=(90, 128))
    synthetic_tile(root / "small", "A", size=(50, 80))
    synthetic_tile(root / "unlabelled", "A", labels=False)
    synthetic_tile(root / "float_labels", "A")
    with rasterio.open(root / "float_labels" / "A_label.tif") as ds:
        profile = ds.profile
    profile.update(dtype="float32")
    with rasterio.open(root / "float_labels" / "A_label.tif", "w", **profile) as ds:
        ds.write(np.full((1, profile["height"], profile["width"]), 0.5, np.float32))
    coco_dir = root / "coco"
    synthetic_tile(coco_dir, "A", labels=False)
    (coco_dir / "A.json").write_text(json.dumps({"annotations": [
        {"id": 7, "category_id": 1, "segmentation": {"size": [50, 50], "counts": [2500]}}]}))
    broken = root / "broken_coco"
    synthetic_tile(broken, "A", labels=False)
    (broken / "A.json").write_text('{"annotations": [')
    (root / "empty").mkdir()
    (root / "notes.pt").write_text("not a model")
    arch = Arch(4, 2, "resnet14", 8)
    meta = modelio.base_meta(arch, ("B2", "B3", "B4", "B5"), [0, 1], 64,
                             {"low": [0] * 4, "high": [1] * 4, "mean": [0] * 4, "std": [1] * 4}, False)
    modelio.save_pytorch(root / "b5_model.pt", build(arch), meta)
    modelio.save_encoder(root / "encoder_b11.pt", ResNetEncoder(1, "resnet14", 8),
                         {"bands": ["B11"], "encoder": "resnet14", "width": 8,
                          "stats": {"low": [0], "high": [1], "mean": [0], "std": [1]}})
    modelio.save_encoder(root / "encoder_dark.pt", ResNetEncoder(4, "resnet14", 8),
                         {"bands": ["B2", "B3", "B4", "B8"], "encoder": "resnet14", "width": 8, "dark_object": True,
                          "stats": {"low": [0] * 4, "high": [1] * 4, "mean": [0] * 4, "std": [1] * 4}})
    return root


CASES = [
    # (id, args with {root}, fragment of the message)
    ("labels of another size", ["-action", "train", "-i", "{root}/wrong_labels"],
     "labels of another size: A_label.tif is 90x128 px (rows x cols), tile A is 96x128"),
    ("COCO of another size", ["-action", "extract_data", "-i", "{root}/coco"],
     "labels of another size: COCO file A.json, annotation 7 is 50x50 px"),
    ("unknown band", ["-action", "full", "-i", "{root}/good", "-bands", "B2,B5"],
     "unknown band B5 for tile A: it has B2, B3, B4, B8"),
    ("index of a band the tiles lack", ["-action", "full", "-i", "{root}/good", "--indices", "NDWI,NDBI"],
     "--indices: index NDBI needs band(s) B11, not among B2,B3,B4,B8"),
    ("patch size not 64/256", ["-action", "train", "-i", "{root}/good", "-patch_size", "128"],
     "invalid value 128 for parameter 'patch_size': allowed 64 or 256"),
    ("patch stride larger than the patch", ["-action", "extract_data", "-i", "{root}/good", "-patch_size", "64",
                                            "--patch_stride", "96"],
     "invalid value 96 for parameter 'patch_stride': allowed 0 or at most the patch size (64)"),
    ("mixed windows of one network", ["-action", "full", "-i", "{root}/good", "--ensemble_windows", "mixed"],
     "invalid value 'mixed' for parameter 'ensemble_windows': allowed same unless --ensemble is 2 or more"),
    ("mixed windows on side-by-side patches", ["-action", "full", "-i", "{root}/good", "--ensemble", "2",
                                               "--ensemble_windows", "mixed"],
     "--ensemble_windows mixed: these patches were cut side by side; extract them with --patch_stride below the "
     "patch size"),
    ("tile smaller than a patch", ["-action", "full", "-i", "{root}/small"],
     "tile A is 50x80 px, smaller than a patch (--patch_size 64)"),
    ("tile smaller than the default patch", ["-action", "extract_data", "-i", "{root}/good", "-patch_size", "256"],
     "smaller than a patch (--patch_size 256)"),
    ("no action", ["-i", "{root}/good"], "parameter 'action'"),
    ("predict without a model", ["-action", "predict", "-i", "{root}/good"], "parameter 'model_file'"),
    ("model file is not a model", ["-action", "predict", "-i", "{root}/good", "-model_file", "{root}/notes.pt"],
     "notes.pt is not a PyTorch model file of this service"),
    ("model needs a band the tile lacks", ["-action", "predict", "-i", "{root}/good", "-model_file",
                                           "{root}/b5_model.pt"], "unknown band B5 for tile A"),
    ("model file absent", ["-action", "predict", "-i", "{root}/good", "-model_file", "{root}/none.onnx"],
     "input not found"),
    ("input absent", ["-action", "full", "-i", "{root}/nowhere"], "input not found"),
    ("folder without tiles", ["-action", "full", "-i", "{root}/empty"], "no Sentinel-2 tiles"),
    ("tiles without labels", ["-action", "train", "-i", "{root}/unlabelled"], "no labelled tile"),
    ("labels not class ids", ["-action", "train", "-i", "{root}/float_labels"], "outside the class ids 0-255"),
    ("broken COCO", ["-action", "train", "-i", "{root}/broken_coco"], "COCO file A.json is not readable JSON"),
    ("model name for the other format", ["-action", "train", "-i", "{root}/good", "-model_format", "onnx",
                                         "-model_file", "m.pt"], "parameter 'model_file'"),
    ("pretrained without weights", ["-action", "train", "-i", "{root}/good", "-pretrained", "True"],
     "parameter 'pretrained_weights'"),
    ("encoder of other bands", ["-action", "train", "-i", "{root}/good", "-pretrained", "True",
                                "--pretrained_weights", "{root}/encoder_b11.pt"],
     "the pre-trained encoder was trained on bands B11"),
    ("encoder of dark-object patches", ["-action", "train", "-i", "{root}/good", "-pretrained", "True",
                                        "--pretrained_weights", "{root}/encoder_dark.pt"],
     "encoder_dark.pt: the pre-trained encoder saw patches with --dark_object, these patches are without it"),
    ("int8 for a PyTorch file", ["-action", "train", "-i", "{root}/good", "--quantize", "int8"],
     "parameter 'quantize': allowed none unless -model_format onnx"),
    ("batch size 1", ["-action", "train", "-i", "{root}/good", "-b", "1"], "parameter 'batch_size'"),
    ("split without growth", ["-action", "full", "-i", "{root}/good", "--split_depth", "0.2"],
     "invalid value 0.2 for parameter 'split_depth': allowed 0 unless --grow_threshold is set"),
    ("unknown flag", ["-action", "train", "-i", "{root}/good", "-colour", "red"], "unrecognized arguments"),
]
if not torch.cuda.is_available():
    CASES.append(("no CUDA", ["-action", "train", "-i", "{root}/good", "--device", "cuda"], "no CUDA device"))


@pytest.mark.parametrize("case_id, args, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, args, fragment, inputs, tmp_path, capsys):
    outdir = tmp_path / "out"
    argv = [a.format(root=inputs) for a in args] + FAST + ["--outdir", str(outdir)]
    if case_id == "patch size not 64/256" or case_id == "tile smaller than the default patch":
        argv = [a.format(root=inputs) for a in args] + TINY + ["--outdir", str(outdir)]
    if case_id == "unknown flag":
        with pytest.raises(SystemExit) as e:
            main(argv)
        code = e.value.code
    else:
        code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("s2-patch-classifier: error: "), err
    assert fragment in lines[0]
    assert not outdir.exists() or not any(outdir.rglob("*"))
    assert not any(p.name.startswith(".s2pc-") for p in inputs.rglob("*"))


def test_exit_status_of_the_command(inputs, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "components.s2_patch_classifier.cli", "-action", "train", "-i",
                           str(inputs / "good"), "-patch_size", "100", "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "s2-patch-classifier: error: invalid value 100 for parameter 'patch_size'")
    assert not (tmp_path / "o").exists()
