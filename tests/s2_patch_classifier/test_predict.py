"""Prediction: ONNX export checked against PyTorch with ONNX Runtime, sliding windows with
overlap, GeoTIFF output on the input grid with a colour table."""

import numpy as np
import pytest
import rasterio
import torch

from components.s2_patch_classifier import modelio
from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.model import Arch, build
from components.s2_patch_classifier.onnx_export import export
from components.s2_patch_classifier.predict import (NODATA, OnnxPredictor, TorchPredictor, open_predictor,
                                                    _predict_rows, predict_array, predict_tile, to_cog,
                                                    window_weights)

from .fixtures import SYNTH_BANDS, synthetic_tile


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small U-Net with random weights and non-trivial batch-norm statistics, saved both ways."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    arch = Arch(len(SYNTH_BANDS), 3, "resnet14", 8)
    model = build(arch)
    model.normalise.set_stats([0] * 4, [4000] * 4, [800, 900, 800, 1000], [500, 500, 600, 900])
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    meta = modelio.base_meta(arch, SYNTH_BANDS, [0, 1, 2], 64, {"low": [0] * 4, "high": [4000] * 4,
                                                                 "mean": [0] * 4, "std": [1] * 4}, False)
    pt = modelio.save_pytorch(root / "model.pt", model, meta)
    onnx_path = export(model, root / "model.onnx", meta, 64)
    return model, meta, pt, onnx_path


def test_onnx_matches_pytorch(models):
    model, meta, pt, onnx_path = models
    rng = np.random.default_rng(0)
    for batch in (1, 3):  # the batch dimension is dynamic
        x = rng.uniform(0, 3000, (batch, 4, 64, 64)).astype(np.float32)
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(x)), 1).numpy()
        got = OnnxPredictor(onnx_path, modelio.read_meta(onnx_path), torch.device("cpu"))(x)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-5)
    assert modelio.read_meta(onnx_path) == modelio.read_meta(pt) == meta


def test_engines_agree_on_a_tile(models, tmp_path):
    _, _, pt, onnx_path = models
    synthetic_tile(tmp_path, "A", size=(150, 170))
    (tile,) = find_tiles(tmp_path / "A.tif")
    image = tile.read(SYNTH_BANDS)
    fp32 = predict_array(image, open_predictor(pt, torch.device("cpu"), precision="fp32"), 0.25)
    ort = predict_array(image, open_predictor(onnx_path, torch.device("cpu")), 0.25)
    assert (fp32 == ort).mean() > 0.999
    fast = open_predictor(pt, torch.device("cpu"))  # bf16 where the CPU has it
    assert (predict_array(image, fast, 0.25) == fp32).mean() > 0.98


def test_sliding_window_blends_overlapping_windows(models):
    model, meta, pt, _ = models
    predictor = open_predictor(pt, torch.device("cpu"), precision="fp32")
    image = np.random.default_rng(1).uniform(0, 3000, (4, 64, 64)).astype(np.float32)
    with torch.no_grad():  # a tile of one window: the model's own argmax
        direct = model(torch.from_numpy(image[None])).argmax(1)[0].numpy()
    np.testing.assert_array_equal(predict_array(image, predictor, 0.5), direct)
    big = np.random.default_rng(2).uniform(0, 3000, (4, 100, 130)).astype(np.float32)
    acc = _predict_rows(lambda y, p: big[:, y:y + p], 100, 130, predictor, 0.5, write=None, probabilities=True)
    # the same sums by brute force over the window grid (stride 32, last windows on the edge)
    w = window_weights(64)
    expect = np.zeros_like(acc)
    for y in (0, 32, 36):
        for x in (0, 32, 64, 66):
            expect[:, y:y + 64, x:x + 64] += predictor(big[None, :, y:y + 64, x:x + 64])[0] * w
    np.testing.assert_allclose(acc, expect, rtol=1e-4, atol=1e-5)


def test_geotiff_keeps_grid_and_colours(models, tmp_path):
    _, meta, pt, _ = models
    tif = synthetic_tile(tmp_path / "in", "A", size=(90, 140), crs="EPSG:32633")
    with rasterio.open(tif, "r+") as ds:  # a no-data corner in every band
        for b in range(1, 5):
            d = ds.read(b)
            d[:5, :7] = 0
            ds.write(d, b)
    (tile,) = find_tiles(tif)
    predictor = TorchPredictor(modelio.load_pytorch(pt)[0], meta, torch.device("cpu"))
    res = predict_tile(tile, predictor, 0.25, tmp_path / "raw.tif")
    cog = to_cog(res.path, tmp_path / "A_classes.tif")
    with rasterio.open(tif) as src, rasterio.open(cog) as out:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        assert out.nodata == NODATA and out.dtypes[0] == "uint8"
        data = out.read(1)
        assert (data[:5, :7] == NODATA).all() and set(np.unique(data[5:])) <= {0, 1, 2}
        cmap = out.colormap(1)
        assert cmap[1][:3] == tuple(meta["colours"][1]) and cmap[2][:3] == tuple(meta["colours"][2])
    assert sum(res.class_pixels.values()) == 90 * 140 and res.class_pixels["nodata"] == 35
