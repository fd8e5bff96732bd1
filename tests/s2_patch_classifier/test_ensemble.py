"""Ensembles (``--ensemble k``): k networks trained from seeds seed, seed + 1, ... on one split,
saved in one model file, their class probabilities averaged by every engine."""

from __future__ import annotations

import json

import numpy as np
import torch

from components.s2_patch_classifier import modelio
from components.s2_patch_classifier.cli import main
from components.s2_patch_classifier.model import Arch, Ensemble, UNet, build
from components.s2_patch_classifier.predict import open_predictor

from .fixtures import TINY, synthetic_tile
from .test_training_loop import _cfg, _patches

CPU = torch.device("cpu")


def test_the_ensemble_gives_the_members_average_probabilities():
    torch.manual_seed(0)
    arch = Arch(4, 3, "resnet14", 8)
    members = [UNet(arch).eval() for _ in range(3)]
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        want = sum(torch.softmax(m(x), 1) for m in members) / 3
        got = torch.softmax(Ensemble(members).eval()(x), 1)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(torch.softmax(members[0](x), 1), want, atol=1e-3)  # the members differ


def test_training_an_ensemble_keeps_the_first_member_and_the_split():
    from components.s2_patch_classifier.train import train

    ps = _patches()
    single = train(ps, _cfg(seed=3))
    pair = train(ps, _cfg(seed=3, members=2))
    assert isinstance(pair.model, Ensemble) and len(pair.model.members) == 2
    assert np.array_equal(pair.val_index, single.val_index)
    first, second = (m.state_dict() for m in pair.model.members)
    for key, value in single.model.state_dict().items():
        assert torch.equal(first[key], value), key
    assert not torch.equal(first["head.weight"], second["head.weight"])
    assert [m["seed"] for m in pair.metrics["members"]] == [3, 4]
    assert pair.metrics["best_epoch"] == single.metrics["best_epoch"]
    assert sorted({h["member"] for h in pair.history}) == [0, 1]


def test_an_ensemble_file_predicts_the_average_in_every_engine(tmp_path, capsys):
    tiles = tmp_path / "tiles"
    synthetic_tile(tiles, "A", size=(96, 128), seed=1)
    common = ["-patch_size", "64", "-b", "4", "-epochs", "1", "--ensemble", "2", "--device", "cpu"] + TINY
    assert main(["-action", "train", "-i", str(tiles), "-o", str(tmp_path / "pt")] + common) == 0
    model, meta = modelio.load_pytorch(tmp_path / "pt" / "model.pt")
    assert isinstance(model, Ensemble) and meta["members"] == 2 and meta["training"]["ensemble"] == 2
    metrics = json.loads((tmp_path / "pt" / "metrics.json").read_text())
    assert len(metrics["members"]) == 2
    # the ONNX export (checked against PyTorch by train itself) carries the whole ensemble
    assert main(["-action", "train", "-i", str(tiles), "-o", str(tmp_path / "onnx"), "-model_format", "onnx"]
                + common) == 0
    x = np.random.default_rng(0).normal(1000, 300, (2, 4, 64, 64)).astype(np.float32)
    members = [build(model.arch) for _ in range(2)]
    for i, m in enumerate(members):
        m.load_state_dict({k.split(".", 2)[2]: v for k, v in model.state_dict().items()
                           if k.startswith(f"members.{i}.")})
    with torch.no_grad():
        want = (sum(torch.softmax(m.eval()(torch.from_numpy(x)), 1) for m in members) / 2).numpy()
    for engine in ("torch", "onnxruntime"):
        got = open_predictor(tmp_path / "pt" / "model.pt", CPU, precision="fp32", engine=engine)(x)
        assert np.abs(got - want).max() < 1e-4, engine
    onnx_meta = modelio.read_meta(tmp_path / "onnx" / "model.onnx")
    assert onnx_meta["members"] == 2
    assert main(["-action", "predict", "-i", str(tiles), "-o", str(tmp_path / "pred"), "-model_file",
                 str(tmp_path / "onnx" / "model.onnx")]) == 0
    assert (tmp_path / "pred" / "A_classes.tif").is_file()


def test_mixed_windows_train_every_second_member_on_the_side_by_side_patches(tmp_path, capsys):
    tiles = tmp_path / "tiles"
    synthetic_tile(tiles, "A", size=(96, 128), seed=1)  # every 32 px: 2 x 3 windows, side by side 2 x 2
    common = ["-patch_size", "64", "-b", "4", "--device", "cpu", "--val_fraction", "0"] + TINY
    assert main(["-action", "extract_data", "-i", str(tiles), "-o", str(tmp_path / "p"), "--patch_stride", "32"]
                + common) == 0, capsys.readouterr().err
    assert main(["-action", "train", "-i", str(tmp_path / "p"), "-o", str(tmp_path / "m"), "-epochs", "2",
                 "--ensemble", "3", "--ensemble_windows", "mixed"] + common) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    members = [(m["windows"], m["training_patches"], m["epochs_run"]) for m in metrics["members"]]
    assert members == [("all", 6, 2), ("side by side", 4, 3), ("all", 6, 2)]  # 2 x 6 / 4 epochs: the same steps
    _, meta = modelio.load_pytorch(tmp_path / "m" / "model.pt")
    assert meta.get("members", 1) == sum(m["kept"] for m in metrics["members"]) >= 1  # members_to_keep
    assert meta["training"]["ensemble"] == 3 and meta["training"]["ensemble_windows"] == "mixed"


def test_a_member_that_never_segmented_a_validation_object_is_left_out():
    from components.s2_patch_classifier.train import assemble, members_to_keep

    assert members_to_keep([0.31, 0.0, 0.22]) == [0, 2]
    assert members_to_keep([0.0, 0.4]) == [1]
    assert members_to_keep([0.0, 0.0]) == [0, 1]  # none rose: nothing to prefer
    nets = [UNet(Arch(4, 2, "resnet14", 8)) for _ in range(3)]
    assert assemble([nets[1]]) is nets[1]  # one left: a plain network, saved as one
    pair = assemble([nets[0], nets[2]])
    assert isinstance(pair, Ensemble) and list(pair.members) == [nets[0], nets[2]]
