"""Bad model files given to s2-patch-classifier: PyTorch and ONNX models for ``-action predict``,
encoder checkpoints for ``-action train -pretrained true``. Each one is one line naming the file
and the problem, exit status 2, and nothing left in the output folder.

The good files are built the cheap way of the other tests (a tiny U-Net with random weights,
saved with the service's own writers); every case writes a corrupted copy, or a file of another
kind, and runs the real command line."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from components.s2_patch_classifier import modelio
from components.s2_patch_classifier.cli import main
from components.s2_patch_classifier.model import Arch, ResNetEncoder, build
from tests.fixtures.corruption import crop_lstm_h5

from .fixtures import SYNTH_BANDS, TINY, synthetic_tile

STATS = {"low": [0.0] * 4, "high": [4000.0] * 4, "mean": [800.0] * 4, "std": [500.0] * 4}
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")
FAST = ["-patch_size", "64", "-epochs", "1"] + TINY


def _model(arch: Arch = Arch(4, 2, "resnet14", 8), bands=SYNTH_BANDS, patch: int = 64):
    torch.manual_seed(0)
    model = build(arch)
    model.normalise.set_stats(*([v[0]] * arch.in_channels for v in STATS.values()))
    stats = {k: [v[0]] * arch.in_channels for k, v in STATS.items()}
    return model.eval(), modelio.base_meta(arch, bands, list(range(arch.num_classes)), patch, stats, False)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from components.s2_patch_classifier.onnx_export import export

    root = tmp_path_factory.mktemp("s2pc_bad_models")
    synthetic_tile(root / "tiles", "A")
    model, meta = _model()
    pt = modelio.save_pytorch(root / "good.pt", model, meta)
    onnx_path = export(model, root / "good.onnx", meta, 64)
    encoder = ResNetEncoder(4, "resnet14", 8)
    enc = modelio.save_encoder(root / "good_encoder.pt", encoder, {
        "service_version": "test", "method": "MoCo v2", "encoder": "resnet14", "width": 8, "in_channels": 4,
        "bands": list(SYNTH_BANDS), "stats": STATS, "patch_size": 64, "epochs": 1, "patches": 1})
    return {"root": root, "tiles": root / "tiles", "pt": pt, "onnx": onnx_path, "encoder": enc}


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
# How each bad file is made


def _bytes(source: str, transform):
    def make(g, dest: Path) -> Path:
        dest.write_bytes(transform(g[source].read_bytes()))
        return dest
    return make


def _edit(source: str, change):
    """A copy of a good PyTorch file with ``change(checkpoint)`` applied."""
    def make(g, dest: Path) -> Path:
        ckpt = torch.load(g[source], map_location="cpu", weights_only=True)
        change(ckpt)
        torch.save(ckpt, dest)
        return dest
    return make


def _meta(key, value):
    def change(ckpt):
        node = ckpt["meta"]
        keys = key.split(".")
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value
    return change


def _weights(change):
    def apply(ckpt):
        change(ckpt["state_dict"])
    return apply


def _hdf5(g, dest: Path) -> Path:
    return crop_lstm_h5(dest)


def _aqgan(g, dest: Path) -> Path:
    torch.save({"format": "aqgan-model", "format_version": 1, "arch": {}, "generator": {}}, dest)
    return dest


def _copy(source: str, name: str | None = None):
    def make(g, dest: Path) -> Path:
        dest = dest.with_name(name) if name else dest
        shutil.copy(g[source], dest)
        return dest
    return make


def _pickled_module(g, dest: Path) -> Path:
    torch.save(build(Arch(4, 2, "resnet14", 8)), dest)  # the whole module, pickled
    return dest


def _nan(state):
    state["head.weight"][0, 0, 0, 0] = float("nan")


def _onnx_edit(change):
    def make(g, dest: Path) -> Path:
        import onnx

        dest = dest.with_suffix(".onnx")
        proto = onnx.load(str(g["onnx"]))
        change(proto)
        onnx.save_model(proto, str(dest))
        return dest
    return make


def _onnx_meta(change):
    def apply(proto):
        entry = next(p for p in proto.metadata_props if p.key == modelio.META_KEY)
        entry.value = change(entry.value)
    return apply


def _drop_onnx_meta(proto):
    del proto.metadata_props[:]


def _unknown_op(proto):
    proto.graph.node[-1].op_type = "NoSuchOp"  # a valid file that ONNX Runtime cannot run


def _three_bands(text: str) -> str:
    meta = json.loads(text)
    meta["bands"] = meta["bands"][:3]
    meta["arch"]["in_channels"] = 3
    meta["stats"] = {k: v[:3] for k, v in meta["stats"].items()}
    return json.dumps(meta)


def _five_bands(g, dest: Path) -> Path:
    model, meta = _model(Arch(5, 2, "resnet14", 8), bands=SYNTH_BANDS + ("B11",))
    return modelio.save_pytorch(dest, model, meta)


def _large_windows(g, dest: Path) -> Path:
    model, meta = _model(patch=256)
    return modelio.save_pytorch(dest, model, meta)


PREDICT = "predict"
TRAIN = "train"
CASES = [
    # (id, how the file is used, make the bad file, fragment of the message)
    ("empty file", PREDICT, _bytes("pt", lambda b: b""), "model.pt is empty (0 bytes)"),
    ("truncated file", PREDICT, _bytes("pt", lambda b: b[: len(b) // 2]),
     "model.pt is not a PyTorch model file of this service: not a readable PyTorch file"),
    ("random bytes", PREDICT, _bytes("pt", lambda b: np.random.default_rng(0).bytes(5000)),
     "model.pt is not a PyTorch model file of this service: not a readable PyTorch file"),
    ("crop-LSTM .h5 model", PREDICT, _hdf5, "crop_lstm.h5 is an HDF5 file"),
    ("aqgan model", PREDICT, _aqgan, "model.pt is an aqgan model (aqgan-train), not a model from train"),
    ("encoder checkpoint as the model", PREDICT, _copy("encoder"),
     "model.pt is an encoder checkpoint from --action pretrain, not a model from train"),
    ("pickled Python objects", PREDICT, _pickled_module, "model.pt holds pickled Python objects"),
    ("no weights", PREDICT, _edit("pt", lambda c: c.pop("state_dict")), "model.pt is incomplete: no 'state_dict'"),
    ("missing weight", PREDICT, _edit("pt", _weights(lambda s: s.pop("head.bias"))),
     "model.pt: the model weights do not match its architecture (resnet14, width 8, 4 bands, 2 classes): "
     "missing head.bias"),
    ("unexpected weight", PREDICT, _edit("pt", _weights(lambda s: s.update({"head2.weight": torch.zeros(2)}))),
     "model.pt: the model weights do not match its architecture (resnet14, width 8, 4 bands, 2 classes): "
     "unexpected head2.weight"),
    ("another width", PREDICT, _edit("pt", _meta("arch.width", 16)),
     "model.pt: the model weights do not match its architecture (resnet14, width 16, 4 bands, 2 classes): "
     "encoder.conv1.weight is [8, 4, 7, 7], the architecture needs [16, 4, 7, 7]"),
    ("unknown encoder", PREDICT, _edit("pt", _meta("arch.encoder", "resnet101")),
     "model.pt: unknown encoder 'resnet101' (known: resnet50, resnet26, resnet14)"),
    ("index of a band beyond the inputs", PREDICT, _edit("pt", _meta("arch.indices", [[1, 4]])),
     "model.pt: arch.indices is [[1, 4]], not a list of band position pairs below 4"),
    ("ensemble size out of range", PREDICT, _edit("pt", _meta("members", 99)),
     "model.pt: members is 99, not an integer 1..8"),
    ("an ensemble's size over one network's weights", PREDICT, _edit("pt", _meta("members", 2)),
     "model.pt: the model weights do not match its architecture (resnet14, width 8, 4 bands, 2 classes, an "
     "ensemble of 2): missing members.0."),
    ("dark levels of another length", PREDICT, _edit("pt", _meta("dark_object", {"percentile": 2.0, "levels": [1.0]})),
     "model.pt: dark_object.levels is [1.0], not 4 finite numbers (one per band)"),
    ("width out of range", PREDICT, _edit("pt", _meta("arch.width", 0)),
     "model.pt: arch.width is 0, not an integer 4..128"),
    ("bands missing from the metadata", PREDICT, _edit("pt", _meta("bands", None)),
     "model.pt is incomplete: its metadata has no 'bands'"),
    ("band count and channels disagree", PREDICT, _edit("pt", _meta("bands", ["B2", "B3", "B4"])),
     "model.pt: 3 bands (B2, B3, B4) for 4 input channels"),
    ("unknown band", PREDICT, _edit("pt", _meta("bands", ["B2", "B3", "B4", "B13"])),
     "model.pt: unknown band 'B13'"),
    ("classes and outputs disagree", PREDICT, _edit("pt", _meta("classes", [0, 1, 2])),
     "model.pt: 3 classes for 2 network outputs"),
    ("patch size not 64/256", PREDICT, _edit("pt", _meta("patch_size", 100)),
     "model.pt: patch size 100 is not one of 64, 256"),
    ("statistics of another length", PREDICT, _edit("pt", _meta("stats.std", [1.0])),
     "model.pt: stats.std has 1 values for 4 bands"),
    ("non-finite weights", PREDICT, _edit("pt", _weights(_nan)), "model.pt: non-finite values in weight head.weight"),
    ("truncated ONNX", PREDICT, lambda g, d: _bytes("onnx", lambda b: b[: len(b) // 3])(g, d.with_suffix(".onnx")),
     "model.onnx is not a readable ONNX file"),
    ("PyTorch file named .onnx", PREDICT, _copy("pt", "model.onnx"), "model.onnx is not a readable ONNX file"),
    ("ONNX without metadata", PREDICT, _onnx_edit(_drop_onnx_meta),
     "model.onnx is an ONNX file without this service's metadata"),
    ("ONNX metadata not JSON", PREDICT, _onnx_edit(_onnx_meta(lambda t: t[:-5])),
     "model.onnx: its metadata (s2_patch_classifier) is not readable JSON"),
    ("ONNX op unknown to ONNX Runtime", PREDICT, _onnx_edit(_unknown_op), "ONNX Runtime cannot load model.onnx"),
    ("ONNX graph and metadata disagree", PREDICT, _onnx_edit(_onnx_meta(_three_bands)),
     "model.onnx: the ONNX graph takes 4 bands, its metadata lists 3 (B2, B3, B4)"),
    ("model takes a band the tile lacks", PREDICT, _five_bands,
     "unknown band B11 for tile A: it has B2, B3, B4, B8; the model model.pt takes B2, B3, B4, B8, B11"),
    ("tile smaller than the model's windows", PREDICT, _large_windows,
     "tile A is 96x128 px, smaller than the 256 px windows of the model model.pt"),
    ("truncated encoder", TRAIN, _bytes("encoder", lambda b: b[:1000]),
     "model.pt is not an encoder checkpoint of this service: not a readable PyTorch file"),
    ("model as the encoder", TRAIN, _copy("pt"),
     "model.pt is a model from train, not an encoder checkpoint from --action pretrain"),
    ("encoder of an unknown depth", TRAIN, _edit("encoder", _meta("encoder", "resnet18")),
     "model.pt: unknown encoder 'resnet18'"),
    ("encoder weights of another width", TRAIN, _edit("encoder", _meta("width", 16)),
     "model.pt: the encoder weights do not match its architecture (resnet14, width 16, 4 bands): conv1.weight is "
     "[8, 4, 7, 7], the architecture needs [16, 4, 7, 7]"),
    ("encoder weight missing", TRAIN, _edit("encoder", _weights(lambda s: s.pop("layer4.0.conv3.weight"))),
     "model.pt: the encoder weights do not match its architecture (resnet14, width 8, 4 bands): missing "
     "layer4.0.conv3.weight"),
    ("encoder without bands", TRAIN, _edit("encoder", _meta("bands", None)),
     "model.pt is incomplete: its metadata has no 'bands'"),
    ("encoder with dark_object not a flag", TRAIN, _edit("encoder", _meta("dark_object", "yes")),
     "model.pt: dark_object 'yes' is not true or false"),
]


def _stderr_lines(err: str) -> list[str]:
    """What the command itself wrote on stderr: everything but timestamped log lines."""
    return [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]


@pytest.mark.parametrize("case_id, use, make, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_model(case_id, use, make, fragment, good, tmp_path, capsys):
    bad = make(good, tmp_path / "model.pt")
    out = tmp_path / "out"
    if use == PREDICT:
        argv = ["-action", "predict", "-i", str(good["tiles"]), "-model_file", str(bad)]
    else:
        argv = ["-action", "train", "-i", str(good["tiles"]), "-pretrained", "true",
                "--pretrained_weights", str(bad)] + FAST
    capsys.readouterr()
    code = main(argv + ["--outdir", str(out)])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("s2-patch-classifier: error: "), lines
    assert bad.name in lines[0] and fragment in lines[0], lines[0]
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    assert not any(p.name.startswith(".s2pc-") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("source", ["pt", "onnx"])
def test_the_good_models_predict(source, good, tmp_path):
    """The files above are bad because of their corruption only: the originals predict."""
    assert main(["-action", "predict", "-i", str(good["tiles"]), "-model_file", str(good[source]),
                 "--outdir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "A_classes.tif").is_file()


def test_the_good_encoder_fine_tunes(good, tmp_path):
    assert main(["-action", "train", "-i", str(good["tiles"]), "-pretrained", "true", "--pretrained_weights",
                 str(good["encoder"]), "--outdir", str(tmp_path / "out")] + FAST) == 0
    assert (tmp_path / "out" / "model.pt").is_file()
