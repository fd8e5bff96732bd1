"""The model file and the ONNX export: the .h5 file reloads into a model that predicts exactly as
the trained one, without any training state; ONNX Runtime agrees with PyTorch; classification
figures agree with scikit-learn; bad model files are refused by name."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from components.common.errors import ServiceError
from components.crop_lstm.h5io import FORMAT, ModelInfo, load_model, save_model
from components.crop_lstm.metrics import summary
from components.crop_lstm.model import CropLSTM, ModelConfig, normalisation, predict_logits
from components.crop_lstm.onnx_export import export_onnx, max_difference, onnx_session
from components.crop_lstm.training import cpu_threads, pick_device

torch.set_num_threads(1)


def _inputs(n=64, t=12, f=9, seed=0):
    x = np.random.default_rng(seed).uniform(1, 6000, (n, t, f)).astype(np.float32)
    x[::5, 3] = 0  # months without observation
    return x


def test_trained_h5_reloads_and_predicts_identically(chain):
    model, info = load_model(chain.h5)
    x = np.load(chain.dataset / "train.npy")
    xv = np.load(chain.dataset / "val" / "val.npy")
    # the reloaded model predicts the validation set as train_lstm reported it
    metrics = json.loads((chain.model_dir / "metrics.json").read_text())
    pred = np.asarray(info.class_ids)[predict_logits(model, xv).argmax(1)]
    assert summary(np.load(chain.dataset / "val" / "y_val.npy"), pred)["overall_accuracy"] == \
        pytest.approx(metrics["overall_accuracy"], abs=1e-6)
    # a second independent load gives bit-identical logits
    again, _ = load_model(chain.h5)
    for data in (x, _inputs()):
        assert np.array_equal(predict_logits(model, data), predict_logits(again, data))
    assert info.class_ids == [1, 2, 9, 12]
    assert info.class_names == ["Grassland", "Maize", "Rapeseed", "Winter Wheat"]
    assert info.band_names == ["B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"]
    assert info.timesteps[0] == "2017-09" and len(info.timesteps) == 12


def test_save_load_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = CropLSTM(ModelConfig(9, 12, 5, hidden_size=8, num_layers=2, bidirectional=True)).eval()
    x = _inputs()
    model.set_normalisation(*normalisation(x))
    info = ModelInfo([0, 3, 4, 7, 15], ["a", "b", "c", "d", "e"], ["B2"] * 9, [f"t{i}" for i in range(12)])
    save_model(tmp_path / "m.h5", model, info)
    loaded, info2 = load_model(tmp_path / "m.h5")
    assert torch.equal(loaded(torch.from_numpy(x)), model(torch.from_numpy(x)))
    assert info2.class_ids == info.class_ids and loaded.config == model.config
    with h5py.File(tmp_path / "m.h5") as f:
        assert f.attrs["format"] == FORMAT and json.loads(f.attrs["config"])["bidirectional"] is True
        assert f["normalisation/mean"].shape == (9,)
        assert f["weights/lstm.weight_ih_l0"].shape == (32, 9)
        assert f["weights/lstm.weight_hh_l1_reverse"].shape == (32, 8)


def test_onnx_matches_pytorch_with_onnxruntime(chain, tmp_path):
    model, info = load_model(chain.h5)
    session = onnx_session(chain.model_dir / "crop_lstm.onnx")
    assert [i.shape for i in session.get_inputs()] == [["batch", 12, 9]]
    for n in (1, 37, 300):
        x = _inputs(n, seed=n)
        ours = session.run(["logits"], {"x": x})[0]
        np.testing.assert_allclose(ours, predict_logits(model, x), rtol=1e-5, atol=1e-5)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_ids"]) == info.class_ids
    path = export_onnx(model, tmp_path / "again.onnx", info)
    assert max_difference(onnx_session(path), model, np.load(chain.dataset / "train.npy")) < 1e-4


@pytest.mark.parametrize("mutation, fragment", [
    ("text", "is not a readable HDF5 model file"),
    ("format", "is not a crop-type LSTM model file"),
    ("weights", "incomplete model file"),
    ("shape", "weights do not match the stored configuration"),
])
def test_bad_model_files(chain, tmp_path, mutation, fragment):
    path = tmp_path / "bad.h5"
    if mutation == "text":
        path.write_text("not hdf5")
    else:
        path.write_bytes(chain.h5.read_bytes())
        with h5py.File(path, "r+") as f:
            if mutation == "format":
                f.attrs["format"] = "keras"
            elif mutation == "weights":
                del f["normalisation"]
            else:
                del f["weights/head.bias"]
                f["weights"].create_dataset("head.bias", data=np.zeros(3, np.float32))
    with pytest.raises(ServiceError, match=fragment):
        load_model(path)


def test_classification_figures_by_hand():
    # confusion [[2, 1, 0], [0, 1, 1], [0, 0, 1]]: OA 4/6; chance agreement (3*2 + 2*2 + 1*2) / 36 = 1/3,
    # kappa (2/3 - 1/3) / (2/3) = 0.5; F1 per class 0.8, 0.5, 2/3
    s = summary(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2]))
    assert s["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert s["overall_accuracy"] == pytest.approx(4 / 6) and s["kappa"] == pytest.approx(0.5)
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # a class absent from truth and predictions is listed but does not enter the macro F1
    s = summary(np.array([0, 1]), np.array([0, 1]), labels=[0, 1, 5])
    assert s["labels"] == [0, 1, 5] and s["macro_f1"] == 1.0 and s["kappa"] == 1.0


def test_normalisation_ignores_missing_observations():
    x = np.zeros((4, 3, 2), np.float32)
    x[..., 0] = [[1, 0, 3], [1, 0, 3], [1, 3, 0], [1, 3, 0]]
    x[..., 1] = 5
    mean, std = normalisation(x)
    assert mean.tolist() == pytest.approx([2.0, 5.0]) and std.tolist() == pytest.approx([1.0, 1.0])


def test_device_choice():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ServiceError, match="no CUDA GPU"):
            pick_device("cuda")
    assert cpu_threads(32, 64) == 1
